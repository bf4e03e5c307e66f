/**
 * The ETA estimator's own state rides on a job's state as a property that is
 * not enumerable: the reducer and the stores reach it through these functions,
 * and nothing else sees it — no JSON of a job (REST, WebSocket, SSE, the seed
 * dialects, the bus) carries it, and no spread copies it by accident.
 */
import type { EtaSample, JobState } from '@headway/protocol';

const SLOT = 'estimator';

/** The estimator state kept with `state`, or null (a new job, or a state that never had one). */
export function estimatorOf(state: JobState): EtaSample | null {
  return ((state as { [SLOT]?: EtaSample | null })[SLOT] ?? null) as EtaSample | null;
}

/** `state` with `estimator` kept out of sight (the object is changed and returned). */
export function withEstimator<S extends JobState>(state: S, estimator: EtaSample | null): S {
  Object.defineProperty(state, SLOT, {
    value: estimator,
    enumerable: false,
    writable: false,
    configurable: true,
  });
  return state;
}

/** A state as stored: the public fields, and the estimator as an ordinary field. */
export function storedState(state: JobState): JobState & { estimator: EtaSample | null } {
  return { ...state, estimator: estimatorOf(state) };
}

/** The state of a stored document (from `storedState`): the estimator moves out of sight again. */
export function stateOfStored(stored: JobState & { estimator?: EtaSample | null }): JobState {
  const { estimator = null, ...state } = stored;
  return withEstimator(state, estimator);
}
