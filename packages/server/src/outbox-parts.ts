/** The outbox's socket, configuration and reply holds (see `outbox.ts`). */
import { WebSocket } from 'ws';
import { BoundedMap } from './bounded-map.js';
import { Delivery } from './delivery.js';
import { SmallMap } from './small-map.js';
import type { SnapshotSeqs } from './snapshot-hold.js';
import type { SentLabel } from './write-tick.js';

/** The part of a `ws` WebSocket the outbox writes to. */
export interface OutboxSocket {
  readonly readyState: number;
  readonly bufferedAmount: number;
  send(data: Buffer, options: { binary: boolean }, cb?: (err?: Error) => void): void;
}

export interface OutboxConfig extends SentLabel {
  /** Queued + socket-buffered bytes past which queued collapsible deliveries collapse. */
  softBytes: number;
  /** Queued + socket-buffered bytes past which the connection is given up. */
  hardBytes: number;
  /** Socket-buffered bytes above which writing pauses until the socket drains. Default 64 KiB. */
  writeThresholdBytes?: number;
  /** The bytes written for a delivery, or null to skip it. Default: the native `event` message. */
  encode?: (delivery: Delivery) => Buffer | null;
  /** The same in delta mode (`patch` instead of `state`). Default: the native `event` message with `patch`. */
  encodeDelta?: (delivery: Delivery) => Buffer | null;
}

/** A place in the queue reserved for a reply that is still being computed (see `Outbox.hold`). */
export class Hold {
  readonly kind = 'hold';
  /** The reply, when it was released while an earlier hold still blocked the queue. */
  reply?: Buffer;
  seen?: SnapshotSeqs;
}

export const EMPTY = Buffer.alloc(0);

/** Jobs whose last seq an outbox remembers; the least recently updated are forgotten first. */
const MAX_TRACKED_JOBS = 1024;

/**
 * The last seq an outbox queued per job. Most outboxes see one job, held in
 * fields (`SmallMap`); from a second one on, a `BoundedMap` of at most
 * {@link MAX_TRACKED_JOBS} jobs.
 */
export class JobSeqs extends SmallMap<string, number> {
  constructor() {
    super(trackedSeqs);
  }

  /** Note `seq` as the last queued of `job`. */
  note(job: string, seq: number): void {
    // Below the cap the order does not matter; at the cap the job is re-inserted so
    // that the map's order is least recently updated first and eviction is LRU.
    if (this.size >= MAX_TRACKED_JOBS) this.delete(job);
    this.set(job, seq);
  }
}

/** The map of an outbox's seqs once it has a second job: one function for every outbox. */
function trackedSeqs(): Map<string, number> {
  return new BoundedMap<string, number>(MAX_TRACKED_JOBS);
}

export function isDeliveryItem(item: unknown): item is Delivery {
  return item instanceof Delivery;
}

/** The TCP socket under a WebSocket: corked around a batch so that it goes out in one write. */
export interface RawSocket {
  cork(): void;
  uncork(): void;
  write(frame: Buffer, cb?: (err?: Error | null) => void): boolean;
}

/**
 * The stream under an outbox's socket (a `ws` WebSocket's TCP socket, an SSE
 * response), to cork around a batch; undefined when there is none.
 */
export function rawSocket(socket: OutboxSocket): RawSocket | undefined {
  const raw = (socket as { _socket?: Partial<RawSocket> })._socket;
  return raw &&
    typeof raw.cork === 'function' &&
    typeof raw.uncork === 'function' &&
    typeof raw.write === 'function'
    ? (raw as RawSocket)
    : undefined;
}

/** The TCP socket of a `ws` WebSocket, to write whole frames to; undefined for any other socket. */
export function frameSocket(socket: OutboxSocket): RawSocket | undefined {
  return socket instanceof WebSocket ? rawSocket(socket) : undefined;
}

/**
 * A complete, unmasked WebSocket text frame (a server's) holding `payload`: made
 * once per delivery and encoding, and written as it is to every subscriber's TCP
 * socket, one write each, instead of `ws` framing it again for every socket.
 * Only whole messages are written this way, between `ws`'s own frames, with
 * neither compression nor fragments, so the stream stays what `ws` would write.
 */
export function textFrame(payload: Buffer): Buffer {
  const length = payload.length;
  const headerBytes = length < 126 ? 2 : length < 65_536 ? 4 : 10;
  const frame = Buffer.allocUnsafe(headerBytes + length);
  frame[0] = 0x81; // FIN, text
  if (headerBytes === 2) {
    frame[1] = length;
  } else if (headerBytes === 4) {
    frame[1] = 126;
    frame.writeUInt16BE(length, 2);
  } else {
    frame[1] = 127;
    frame.writeUInt32BE(Math.floor(length / 2 ** 32), 2);
    frame.writeUInt32BE(length >>> 0, 6);
  }
  payload.copy(frame, headerBytes);
  return frame;
}
