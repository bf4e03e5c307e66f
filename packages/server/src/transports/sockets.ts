/**
 * The `ws` plumbing of the native endpoint and the dialects: a server in
 * `noServer` mode (the HTTP server hands it the upgrades), the events of each
 * socket, the text of a frame, and shutting every socket down.
 */
import type { IncomingMessage } from 'node:http';
import type { Logger } from 'pino';
import { type RawData, type WebSocket, WebSocketServer } from 'ws';
import type { Limits } from '../options.js';
import type { LiveSocket } from './heartbeat.js';

/** How long a shutdown waits for clients to answer the close handshake before cutting them off, ms. */
const SHUTDOWN_GRACE_MS = 1_000; // 1 second

/** A connection over a `ws` socket, as the shared plumbing sees it. */
export interface SocketConnection extends LiveSocket {
  /** Resolves when the socket has closed. */
  readonly closed: Promise<void>;
  receive(data: RawData, isBinary: boolean): void;
  close(code: number, reason: string): void;
}

/**
 * A `ws` server for upgrades that the caller has already admitted: frames up to
 * `maxMessageBytes`, no compression (it costs memory per socket), and no client
 * list (the transport keeps its own).
 */
export function socketServer(
  limits: Limits,
  handleProtocols?: (protocols: Set<string>, request: IncomingMessage) => string | false,
): WebSocketServer {
  return new WebSocketServer({
    noServer: true,
    maxPayload: limits.maxMessageBytes,
    perMessageDeflate: false,
    clientTracking: false,
    handleProtocols,
  });
}

/**
 * Route a socket's events to its connection: frames, pongs (a sign of life for
 * the heartbeat), errors (logged; a close follows) and the close itself.
 */
export function attachSocket(
  ws: WebSocket,
  conn: SocketConnection,
  logger: Logger,
  onClose: () => void,
): void {
  ws.on('message', (data, isBinary) => conn.receive(data, isBinary));
  ws.on('pong', () => {
    conn.idleSweeps = 0;
  });
  ws.on('error', (err) => logger.debug({ err }, 'websocket error'));
  ws.once('close', onClose);
}

/**
 * Close every connection with `code`, wait up to `SHUTDOWN_GRACE_MS` for the
 * close handshakes, cut off whoever did not answer, then close the server.
 */
export async function shutDownSockets(
  wss: WebSocketServer,
  connections: readonly SocketConnection[],
  code: number,
  reason: string,
): Promise<void> {
  const closed = Promise.all(connections.map((c) => c.closed));
  for (const c of connections) c.close(code, reason);
  let grace: NodeJS.Timeout | undefined;
  await Promise.race([closed, new Promise((resolve) => (grace = setTimeout(resolve, SHUTDOWN_GRACE_MS)))]);
  clearTimeout(grace);
  for (const c of connections) c.ws.terminate();
  await closed;
  await new Promise<void>((resolve) => wss.close(() => resolve()));
}

/** The UTF-8 text of a frame, however `ws` delivered its bytes. */
export function frameText(data: RawData): string {
  if (Buffer.isBuffer(data)) return data.toString('utf8');
  if (Array.isArray(data)) return Buffer.concat(data).toString('utf8');
  return Buffer.from(data).toString('utf8');
}
