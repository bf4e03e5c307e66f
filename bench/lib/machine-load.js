import { readFileSync } from 'node:fs';

/** Linux reports /proc/stat in USER_HZ ticks, which is 100 per second on every mainstream architecture. */
const TICKS_PER_SECOND = 100;

/**
 * Busy CPU seconds of the whole machine so far (all cores, all processes), from
 * /proc/stat; null where there is no /proc. Subtracting the servers' and the load
 * generator's own CPU from the difference of two readings shows how much other
 * work shared the machine during a measurement — on a shared 2-core box, the
 * first thing to check when a result looks off.
 */
export function machineBusySeconds() {
  try {
    const line = readFileSync('/proc/stat', 'utf8').split('\n', 1)[0];
    const [, user, nice, system, , , irq, softirq, steal] = line.trim().split(/\s+/).map(Number);
    return (user + nice + system + irq + softirq + steal) / TICKS_PER_SECOND;
  } catch {
    return null;
  }
}
