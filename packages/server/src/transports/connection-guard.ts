/**
 * A cap on open TCP connections that sheds the anonymous ones first. Sockets
 * that send headers and then a body that never finishes (or nothing at all) cost
 * a file descriptor each until the request timeout ends them; enough of them at
 * once would leave no descriptor for a health check or a worker. Past the cap, a
 * new connection displaces the oldest socket that has not yet completed an
 * authenticated request, so health checks, workers and watchers stay served
 * while the anonymous crowd waits its turn.
 */
import { readFileSync } from 'node:fs';
import type { Server } from 'node:http';
import type { Socket } from 'node:net';

/** Descriptors kept for the store, the log and outgoing connections (Redis, PostgreSQL). */
const RESERVED_DESCRIPTORS = 64;

export interface ConnectionGuardOptions {
  /** Open connections at most (lowered to the process's open-file limit minus a reserve). */
  maxConnections: number;
  /** Called with each socket shed, for the metrics and the log. */
  onShed?: () => void;
}

export class ConnectionGuard {
  /** Open sockets. */
  private readonly open = new Set<Socket>();
  /** Open sockets without an authenticated request yet, oldest first (a Set keeps insertion order). */
  private readonly anonymous = new Set<Socket>();
  private readonly trusted = new WeakSet<Socket>();
  /** The effective cap. */
  readonly limit: number;

  constructor(private readonly options: ConnectionGuardOptions) {
    const files = openFileLimit();
    this.limit =
      files === null
        ? options.maxConnections
        : Math.max(1, Math.min(options.maxConnections, files - RESERVED_DESCRIPTORS));
  }

  /** Watch the connections of `server`. */
  attach(server: Server): void {
    server.on('connection', (socket: Socket) => this.admit(socket));
  }

  /** The socket made an authenticated request (or was upgraded to a WebSocket): never shed it. */
  trust(socket: Socket | null | undefined): void {
    if (!socket || this.trusted.has(socket)) return;
    this.trusted.add(socket);
    this.anonymous.delete(socket);
  }

  /** Open connections now. */
  get size(): number {
    return this.open.size;
  }

  private admit(socket: Socket): void {
    this.open.add(socket);
    this.anonymous.add(socket);
    socket.once('close', () => {
      this.open.delete(socket);
      this.anonymous.delete(socket);
    });
    while (this.open.size > this.limit) {
      // The oldest anonymous socket; when every other one is trusted, that is this one.
      const victim = this.anonymous.values().next().value ?? socket;
      // `close` comes later: count the victim as gone now.
      this.open.delete(victim);
      this.anonymous.delete(victim);
      this.options.onShed?.();
      victim.destroy();
      if (victim === socket) break;
    }
  }
}

/** The soft limit on open files of this process (Linux), or null when unknown. */
function openFileLimit(): number | null {
  try {
    const line = readFileSync('/proc/self/limits', 'utf8')
      .split('\n')
      .find((l) => l.startsWith('Max open files'));
    const soft = Number(line?.split(/\s{2,}/)[1]);
    return Number.isFinite(soft) && soft > 0 ? soft : null;
  } catch {
    return null;
  }
}
