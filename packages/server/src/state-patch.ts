/**
 * The delta rule: a patch holds every top-level field of a job's new state whose
 * value differs (as JSON) from the state before; a field the new state no longer
 * has is sent as null. Folding is a shallow merge, `{ ...before, ...patch }`.
 * The rule knows no field names, so fields added to the state later need nothing here.
 */
import type { JobState } from '@headway/protocol';

/** Part of a job state: the fields an event changed. */
export type StatePatch = Partial<JobState>;

/** The fields of `after` that differ from `before`; every field when there is no `before`. */
export function statePatch(before: JobState | null | undefined, after: JobState): StatePatch {
  if (!before) return after;
  const patch: Record<string, unknown> = {};
  const b = before as unknown as Record<string, unknown>;
  const a = after as unknown as Record<string, unknown>;
  for (const key in a) if (!jsonEqual(b[key], a[key])) patch[key] = a[key];
  for (const key in b) if (!(key in a)) patch[key] = null;
  return patch as StatePatch;
}

/**
 * Patch texts by the state they start from. Keyed by `before`, not by `after`:
 * an entry keeps its `after` alive, which is the newer state and alive anyway,
 * whereas one keyed by `after` would keep `before` alive, and with it every
 * state the job ever had, through each one's own entry.
 */
const patchTexts = new WeakMap<JobState, { after: JobState; text: string }>();

/**
 * The JSON of `statePatch(before, after)`, made once per pair of states: the
 * store writes it in its log and the delta `event` message embeds it, so an
 * event that is both stored and delivered computes and serializes its patch once.
 */
export function statePatchJson(before: JobState, after: JobState): string {
  const made = patchTexts.get(before);
  if (made !== undefined && made.after === after) return made.text;
  const text = JSON.stringify(statePatch(before, after));
  patchTexts.set(before, { after, text });
  return text;
}

/** Merge patches oldest first: the patch from the state before the first to the state after the last. */
export function mergePatches(patches: readonly StatePatch[]): StatePatch {
  return Object.assign({}, ...patches) as StatePatch;
}

/** Deep equality of JSON values; unchanged sub-objects are usually the same reference. */
function jsonEqual(x: unknown, y: unknown): boolean {
  if (x === y) return true;
  if (typeof x !== 'object' || typeof y !== 'object' || x === null || y === null) return false;
  if (Array.isArray(x)) {
    if (!Array.isArray(y) || x.length !== y.length) return false;
    for (let i = 0; i < x.length; i++) if (!jsonEqual(x[i], y[i])) return false;
    return true;
  }
  if (Array.isArray(y)) return false;
  const xo = x as Record<string, unknown>;
  const yo = y as Record<string, unknown>;
  let n = 0;
  for (const key in xo) {
    if (xo[key] === undefined) continue;
    n++;
    if (!jsonEqual(xo[key], yo[key])) return false;
  }
  for (const key in yo) if (yo[key] !== undefined) n--;
  return n === 0;
}
