/**
 * The SQL stores keep timestamps as integer milliseconds since the epoch, so that
 * ranges and retention compare numbers, and hand them back as ISO-8601 UTC
 * strings (`Date#toISOString`).
 */

/** The last time parsed, and its milliseconds. */
let lastIso = '';
let lastMs = 0;

/**
 * Milliseconds since the epoch of an ISO-8601 time.
 * @throws TypeError for a string that is not a time, rather than storing NaN.
 */
export function toMs(iso: string): number {
  // The events and job rows of one write share their time: parsed once.
  if (iso === lastIso) return lastMs;
  const ms = Date.parse(iso);
  if (!Number.isFinite(ms)) throw new TypeError(`invalid timestamp ${JSON.stringify(iso)}`);
  lastIso = iso;
  lastMs = ms;
  return ms;
}
