/**
 * A job state's JSON, made once: the store writes it as the job row and the
 * native `event` message embeds it, so an event that is both stored and
 * delivered serializes its state once. States are never mutated after they are
 * built (the reducer returns new objects), which is what makes this safe.
 */
import type { JobState } from '@headway/protocol';

const texts = new WeakMap<JobState, string>();

export function stateJson(state: JobState): string {
  let text = texts.get(state);
  if (text === undefined) {
    text = JSON.stringify(state);
    texts.set(state, text);
  }
  return text;
}
