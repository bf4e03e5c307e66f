/**
 * What every WebSocket upgrade passes before a transport takes it, on the
 * native endpoint and the dialects' alike.
 */
import type { IncomingMessage } from 'node:http';
import type { Duplex } from 'node:stream';
import { ErrorCode } from '@headway/protocol';
import type { ServerContext } from '../context.js';

/** The upgrade request's URL (path and query; the host is ignored), or null when it does not parse. */
export function upgradeUrl(req: IncomingMessage): URL | null {
  try {
    return new URL(req.url ?? '/', 'http://localhost');
  } catch {
    return null;
  }
}

/**
 * Refuse the upgrade while the transport shuts down (503), and from an origin
 * that is not allowed (403). Every browser upgrade, with or without the session
 * cookie, must come from an allowed origin: this is what keeps another site from
 * riding the cookie (cross-site WebSocket hijacking). False when refused.
 */
export function admitUpgrade(
  ctx: ServerContext,
  req: IncomingMessage,
  socket: Duplex,
  closing: boolean,
): boolean {
  if (closing) {
    refuse(socket, 503, 'Service Unavailable');
    return false;
  }
  if (!ctx.origins.allows(req.headers.origin, req.headers.host)) {
    ctx.metrics.clientErrors.inc({ code: ErrorCode.ORIGIN_NOT_ALLOWED });
    refuse(socket, 403, 'Forbidden');
    return false;
  }
  return true;
}

/** Answer an upgrade request with a bare HTTP status and close the socket. */
export function refuse(socket: Duplex, status: number, text: string): void {
  if (!socket.writable) {
    socket.destroy();
    return;
  }
  socket.end(`HTTP/1.1 ${status} ${text}\r\nConnection: close\r\nContent-Length: 0\r\n\r\n`);
}
