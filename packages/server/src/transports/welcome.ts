import { PROTOCOL_VERSION, type ServerMessage } from '@headway/protocol';
import type { Principal } from '../auth.js';
import type { ServerContext } from '../context.js';

/**
 * The native protocol's first message, on a WebSocket once it is authenticated
 * and at the start of an SSE stream: the protocol version, the heartbeat, the
 * limits the client must respect, and who the hub takes the client for.
 */
export function welcomeMessage(ctx: ServerContext, principal: Principal): ServerMessage {
  const limits = ctx.options.limits;
  return {
    type: 'welcome',
    version: PROTOCOL_VERSION,
    heartbeatMs: limits.heartbeatMs,
    limits: {
      maxMessageBytes: limits.maxMessageBytes,
      maxSubscriptions: limits.maxSubscriptions,
      messagesPerSecond: limits.messagesPerSecond,
      replayLimit: ctx.hub.replayLimit,
    },
    user: principal.kind === 'user' ? principal.user : principal.id,
  };
}
