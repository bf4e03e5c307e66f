/**
 * The heartbeat of a transport: one interval for all of its connections rather
 * than a timer each, and the checks a sweep makes of every connection.
 */
import type { WebSocket } from 'ws';
import type { Principal } from '../auth.js';

/** Heartbeat sweeps without a pong or a message after which a WebSocket is terminated. */
const MAX_IDLE_SWEEPS = 2;

/**
 * An interval that runs `sweep` every `intervalMs` while started. Transports
 * start it with their first connection and stop it with their last; it is
 * unref'd, so it never keeps the process alive.
 */
export class Heartbeat {
  private timer: NodeJS.Timeout | null = null;

  constructor(
    private readonly intervalMs: number,
    private readonly sweep: () => void,
  ) {}

  /** Start sweeping; does nothing when already started. */
  start(): void {
    if (this.timer) return;
    this.timer = setInterval(this.sweep, this.intervalMs);
    this.timer.unref();
  }

  stop(): void {
    if (this.timer) clearInterval(this.timer);
    this.timer = null;
  }
}

/** Whether the browser token a connection opened with has expired (API keys do not expire). */
export function tokenExpired(principal: Principal | null, nowSeconds: number): boolean {
  return principal?.kind === 'user' && principal.exp !== null && principal.exp <= nowSeconds;
}

/** A WebSocket connection as the heartbeat sees it. */
export interface LiveSocket {
  readonly ws: WebSocket;
  /** Heartbeat sweeps since the last pong or message. */
  idleSweeps: number;
}

/**
 * Ping the connection's socket, or terminate it when it has answered neither
 * the last pings nor sent anything since: a peer that is gone would leave a
 * close frame waiting behind data it does not read. False when terminated.
 */
export function pingSocket(conn: LiveSocket): boolean {
  if (conn.idleSweeps >= MAX_IDLE_SWEEPS) {
    conn.ws.terminate();
    return false;
  }
  conn.idleSweeps++;
  try {
    conn.ws.ping();
  } catch {
    // The socket is closing; its close event cleans up.
  }
  return true;
}
