/**
 * Long-poll (`GET /v1/jobs/:id?wait=…&since=…`): hold the request until the job
 * passes a seq, for clients that can keep neither a WebSocket nor an SSE stream.
 */
import { ErrorCode, type JobState } from '@headway/protocol';
import type { FastifyReply, FastifyRequest } from 'fastify';
import type { Principal } from '../../auth.js';
import type { ServerContext } from '../../context.js';
import { HeadwayError } from '../../errors.js';
import { limitedUser } from '../../policy.js';
import { atTokenExpiry } from '../token-expiry.js';

/**
 * Wait up to `seconds` (capped by `longPollMaxSeconds`) for the job to pass
 * `since`, ending early when the client goes away. Counts as one of the user's
 * connections while it waits. Resolves with the changed state, or null.
 */
export async function longPoll(
  ctx: ServerContext,
  request: FastifyRequest,
  reply: FastifyReply,
  principal: Principal,
  wait: { id: string; since: number; seconds: number },
): Promise<JobState | null> {
  const { hub, metrics, options } = ctx;
  const user = limitedUser(principal);
  if (user !== null && !(await ctx.connections.acquire(user))) {
    throw new HeadwayError(ErrorCode.TOO_MANY_CONNECTIONS, 'too many open connections for this user');
  }
  const controller = new AbortController();
  const abort = () => controller.abort();
  // Gone while the count was taken (it may wait on other processes): wait for nothing.
  if (request.raw.destroyed) controller.abort();
  request.raw.once('close', abort);
  reply.raw.once('close', abort);
  // A token that expires while the request waits ends the wait with TOKEN_EXPIRED.
  let expired = false;
  const expiry = atTokenExpiry(principal, () => {
    expired = true;
    controller.abort();
  });
  metrics.connections.inc({ transport: 'long-poll' });
  try {
    const timeoutMs = Math.min(wait.seconds, options.limits.longPollMaxSeconds) * 1000;
    const changed = await hub.waitForChange(wait.id, wait.since, timeoutMs, controller.signal);
    if (expired) throw new HeadwayError(ErrorCode.TOKEN_EXPIRED, 'token expired');
    return changed;
  } finally {
    expiry.cancel();
    metrics.connections.dec({ transport: 'long-poll' });
    request.raw.off('close', abort);
    reply.raw.off('close', abort);
    if (user !== null) ctx.connections.release(user);
  }
}
