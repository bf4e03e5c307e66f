/**
 * Cancel, pause and resume: over the WebSocket when one is open (answered by an
 * `ack` or an `error` with the request's id), otherwise over REST.
 */
import type { JobState } from '@headway/protocol';
import type { ClientParts } from './client-parts.js';
import { HeadwayClientError } from './errors.js';
import type { ControlAction } from './types.js';

export interface ControlRequests {
  /** Resolves with the job's state once the hub acknowledged. */
  control(id: string, action: ControlAction, reason?: string): Promise<JobState>;
  /** The hub answered request `id`; false when no such request waits. */
  answer(id: string, outcome: JobState | HeadwayClientError): boolean;
  /** The WebSocket the requests were sent on is gone: send them again over REST. */
  resendOverRest(): void;
}

export function createControlRequests(parts: Pick<ClientParts, 'connection' | 'rest'>): ControlRequests {
  /** Requests awaiting their answer on the WebSocket, by request id. */
  const waiting = new Map<
    string,
    { resolve(s: JobState | Promise<JobState>): void; overRest(): Promise<JobState> }
  >();
  let lastId = 0;

  return {
    control(id, action, reason) {
      const overRest = () =>
        parts.rest.api<JobState>(`/v1/jobs/${encodeURIComponent(id)}/${action}`, {
          method: 'POST',
          body: reason === undefined ? undefined : { reason },
        });
      const requestId = `c${++lastId}`;
      if (parts.connection.send({ type: action, id: requestId, job: id, reason })) {
        return new Promise((resolve) => waiting.set(requestId, { resolve, overRest }));
      }
      return overRest();
    },
    answer(id, outcome) {
      const request = waiting.get(id);
      if (!request) return false;
      waiting.delete(id);
      request.resolve(outcome instanceof HeadwayClientError ? Promise.reject(outcome) : outcome);
      return true;
    },
    resendOverRest() {
      for (const [id, request] of waiting) {
        waiting.delete(id);
        request.resolve(request.overRest());
      }
    },
  };
}
