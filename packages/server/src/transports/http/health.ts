/** How long a readiness probe of the store or the bus may take before it counts as down, ms. */
export const READY_PROBE_TIMEOUT_MS = 2_000; // 2 seconds

/**
 * A store's or bus's ping, answered within the readiness timeout: used by
 * `/readyz` and `/v1/stats`. A ping that hangs (a database that accepts the
 * connection but never answers) counts as down rather than stalling the probe.
 */
export async function probeHealth(ping: () => Promise<boolean>): Promise<'ok' | 'down'> {
  let timer: NodeJS.Timeout | undefined;
  try {
    const timeout = new Promise<false>((resolve) => {
      timer = setTimeout(resolve, READY_PROBE_TIMEOUT_MS, false);
    });
    return (await Promise.race([ping(), timeout])) ? 'ok' : 'down';
  } catch {
    return 'down';
  } finally {
    clearTimeout(timer);
  }
}
