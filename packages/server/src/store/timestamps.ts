/**
 * The SQL stores keep timestamps as integer milliseconds since the epoch, so that
 * ranges and retention compare numbers, and hand them back as ISO-8601 UTC
 * strings (`Date#toISOString`).
 */

/**
 * Milliseconds since the epoch of an ISO-8601 time.
 * @throws TypeError for a string that is not a time, rather than storing NaN.
 */
export function toMs(iso: string): number {
  const ms = Date.parse(iso);
  if (!Number.isFinite(ms)) throw new TypeError(`invalid timestamp ${JSON.stringify(iso)}`);
  return ms;
}
