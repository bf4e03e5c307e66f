/** The outbox's socket, configuration and reply holds (see `outbox.ts`). */
import { Delivery } from './delivery.js';
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

export function isDeliveryItem(item: unknown): item is Delivery {
  return item instanceof Delivery;
}

/** The TCP socket under a `ws` WebSocket, corked around a batch so that it goes out in one write. */
export function rawSocket(socket: OutboxSocket): { cork(): void; uncork(): void } | undefined {
  const raw = (socket as { _socket?: { cork?: unknown; uncork?: unknown } })._socket;
  return raw && typeof raw.cork === 'function' && typeof raw.uncork === 'function'
    ? (raw as { cork(): void; uncork(): void })
    : undefined;
}
