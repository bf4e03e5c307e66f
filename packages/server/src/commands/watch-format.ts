/**
 * How `headway watch` writes a job on one terminal line: name, bar, percent,
 * stage, the time left as the hub's interval, status and message.
 */
import type { JobState } from '@headway/client';

/** `2m05s`, `1h03m`: terminals are narrow. */
export function shortDuration(seconds: number): string {
  const s = Math.max(0, Math.round(seconds));
  if (s < 60) return `${s}s`;
  if (s < 3600) return `${Math.floor(s / 60)}m${String(s % 60).padStart(2, '0')}s`;
  return `${Math.floor(s / 3600)}h${String(Math.floor((s % 3600) / 60)).padStart(2, '0')}m`;
}

/**
 * Time left as the hub's interval, `about 2–4 min left` (`about 40s–2m left` across
 * units); the single figure when there is no interval.
 */
export function timeLeft(eta: NonNullable<JobState['eta']>): string {
  const { low, high } = eta;
  if (low === undefined || high === undefined || !(high > low)) return `${shortDuration(eta.seconds)} left`;
  if (high < 60) return 'under 1 min left';
  if (high < 7200) {
    const lo = Math.floor(low / 60);
    const hi = Math.ceil(high / 60);
    if (lo === 0) return `under ${hi} min left`;
    return lo === hi ? `about ${hi} min left` : `about ${lo}–${hi} min left`;
  }
  return `about ${shortDuration(low)}–${shortDuration(high)} left`;
}

/** One job as text: name, bar (on a terminal), percent, stage, time left, status, message. */
export function jobLine(s: JobState, options: { bar: number; color: boolean; width: number }): string {
  const percent = s.status === 'completed' ? 100 : s.progress.percent;
  const paint = (code: string, text: string) => (options.color ? `\x1b[${code}m${text}\x1b[0m` : text);
  const tint: Record<string, string> = {
    completed: '32',
    failed: '31',
    paused: '33',
    cancelled: '2',
    queued: '2',
  };
  const parts = [s.name && s.name !== s.id ? `${s.id} ${s.name}` : s.id];
  if (options.bar > 0) {
    const filled = Math.round((percent / 100) * options.bar);
    parts.push(`[${paint(tint[s.status] ?? '36', '█'.repeat(filled))}${'░'.repeat(options.bar - filled)}]`);
  }
  parts.push(`${percent.toFixed(percent < 10 ? 1 : 0).padStart(4)}%`);
  if (s.stage)
    parts.push(s.stage.count > 1 ? `${s.stage.name} ${s.stage.index + 1}/${s.stage.count}` : s.stage.name);
  if (s.stalled) parts.push(paint('1;31', `STALLED since ${s.stalled.since.slice(11, 19)}Z`));
  else if (s.eta && ['queued', 'running', 'paused'].includes(s.status)) parts.push(timeLeft(s.eta));
  parts.push(paint(tint[s.status] ?? '0', s.status));
  if (s.status === 'failed' && s.error) parts.push(`${s.error.code}: ${s.error.message}`);
  else if (s.message) parts.push(s.message);
  const line = parts.join('  ');
  // Lines never wrap: a wrapped line would break the redraw.
  return options.width > 0 ? truncate(line, options.width) : line;
}

/** Cut a line with color codes to `width` visible characters. */
export function truncate(line: string, width: number): string {
  let visible = 0;
  let out = '';
  for (let i = 0; i < line.length; i++) {
    if (line[i] === '\x1b') {
      const end = line.indexOf('m', i);
      out += line.slice(i, end + 1);
      i = end;
      continue;
    }
    if (visible >= width) break;
    out += line[i];
    visible++;
  }
  return out.includes('\x1b') ? `${out}\x1b[0m` : out;
}
