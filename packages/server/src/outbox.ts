import { BoundedMap } from './bounded-map.js';
import { Delivery } from './delivery.js';
import { SnapshotHold, type SnapshotSeqs } from './snapshot-hold.js';
import { cancelWrite, countWritten, type SentLabel, scheduleWrite } from './write-tick.js';

/**
 * The per-connection send queue.
 *
 * - Batched: a push only marks the outbox dirty; one `setImmediate` shared by
 *   every outbox of the process writes all dirty queues, each in one corked burst.
 * - Shared bytes: a delivery is written as the Buffer its `Delivery` encoded once
 *   for all subscribers; nothing is serialized per connection.
 * - Ordered and without duplicates: per job, a delivery whose seq is not above the
 *   last one queued is dropped. This removes the overlap between a subscription's
 *   replay and the live events that raced it, and any redelivery by the bus.
 * - Bounded: writing stops while the socket holds `writeThresholdBytes`; past
 *   `softBytes` (queued + socket-buffered) queued collapsible deliveries of a job
 *   collapse to the newest; past `hardBytes` the outbox gives up and reports an
 *   overflow, and the transport closes the connection with a "reconnect and
 *   resume" code. Terminal and other non-collapsible deliveries are never dropped
 *   while the connection lives; after an overflow the client learns them by
 *   resuming.
 *
 * Memory is allocated lazily: an idle outbox holds a few numbers and null fields.
 */

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
}

/** A place in the queue reserved for a reply that is still being computed (see `Outbox.hold`). */
export class Hold {
  readonly kind = 'hold';
  /** The reply, when it was released while an earlier hold still blocked the queue. */
  reply?: Buffer;
  seen?: SnapshotSeqs;
}

type Item = Delivery | Buffer | null;
/** What waits behind a pending reply. */
type HeldItem = Delivery | Buffer | Hold;

const OPEN = 1;
const DEFAULT_WRITE_THRESHOLD = 64 * 1024; // 64 KiB
/** Jobs whose last seq an outbox remembers; the least recently updated are forgotten first. */
const MAX_TRACKED_JOBS = 1024;
/** Flushed slots at the front of the queue tolerated before the array is compacted. */
const COMPACT_AFTER = 1024;

const encodeNative = (d: Delivery): Buffer => d.native;

/** Frame options shared by every send, so none is allocated per message. */
const TEXT = { binary: false } as const;

export class Outbox {
  private queue: Item[] | null = null;
  private head = 0;
  private queued = 0;
  private peak = 0;
  /** Last seq queued per job (insertion order = least recently updated first). */
  private lastSeq: BoundedMap<string, number> | null = null;
  /** What arrives while a reply is computed waits here, behind `gate`. */
  private readonly held = new SnapshotHold<HeldItem>();
  /** The pending reply everything held waits for; null when none. */
  private gate: Hold | null = null;
  /** While collapsing: index of the newest queued collapsible delivery per job. */
  private latest: Map<string, number> | null = null;
  /** A write callback is pending: the socket is above the write threshold. */
  private waiting = false;
  private closed = false;

  constructor(
    private readonly socket: OutboxSocket,
    private readonly config: OutboxConfig,
    /** Called once when the queue passes the hard limit; the caller closes the connection. */
    private readonly onOverflow: () => void,
  ) {}

  /** Bytes queued and not yet handed to the socket. */
  get queuedBytes(): number {
    return this.queued;
  }

  /** Highest queued + socket-buffered byte count seen, for diagnostics and tests. */
  get peakBytes(): number {
    return this.peak;
  }

  /** True once the outbox overflowed or was disposed. */
  get isClosed(): boolean {
    return this.closed;
  }

  /**
   * Queue a committed delivery. Returns false when it was dropped: a duplicate
   * or an older seq of its job, a shape without a message for it, or an overflow.
   */
  push(delivery: Delivery): boolean {
    if (this.closed) return false;
    const job = delivery.job;
    const seq = delivery.seq;
    const last = this.lastSeq?.get(job);
    if (last !== undefined && seq <= last) return false;
    // Its seq is noted when it leaves the hold: the reply may cover it.
    if (this.held.holding) return this.holdBack(delivery);
    this.noteSeq(job, seq);
    const bytes = this.encode(delivery);
    if (bytes === null) return false;
    const size = bytes.length;
    if (this.total() + size > this.config.softBytes) {
      if (this.latest === null) this.collapseAll();
      if (delivery.collapsible) this.dropLatest(job);
    }
    if (this.total() + size > this.config.hardBytes) {
      this.overflow();
      return false;
    }
    const index = this.append(delivery, size);
    if (this.latest !== null && delivery.collapsible) this.latest.set(job, index);
    return true;
  }

  /**
   * Queue a reply or other message, in order with the deliveries. A reply is
   * refused (overflow) only when the connection was already behind.
   */
  send(message: Buffer): void {
    if (this.closed) return;
    if (!this.admitReply(message.length)) return;
    if (this.held.holding) this.keep(message, message.length);
    else this.append(message, message.length);
  }

  /**
   * Reserve the current place in the queue for a reply computed asynchronously
   * (a `subscribed` message). Nothing queued after it is written before it is
   * released, so live deliveries that arrive while the replay is read wait behind it.
   */
  hold(): Hold {
    const hold = new Hold();
    if (this.closed) return hold;
    if (this.held.holding) {
      this.held.offer(hold);
    } else {
      this.held.start();
      this.gate = hold;
    }
    return hold;
  }

  /**
   * Fill a held place with its reply. `seen` gives, per job, the seq the reply
   * brings the client up to: deliveries queued behind the hold with seq at or below
   * it are dropped, and so are later ones that arrive with such a seq.
   */
  release(hold: Hold, message: Buffer, seen?: SnapshotSeqs): void {
    if (this.closed) return;
    if (hold !== this.gate) {
      // Behind another pending reply: written when its turn comes.
      hold.reply = message;
      hold.seen = seen;
      return;
    }
    this.gate = null;
    const behind = this.held.release();
    for (const item of behind) this.queued -= this.heldSize(item);
    this.fill(message, seen, behind);
  }

  /** The client has, per job, everything up to `seen`'s seq: deliveries at or below it are dropped. */
  cover(seen: SnapshotSeqs): void {
    for (const [job, seq] of seen) {
      const last = this.lastSeq?.get(job);
      if (last === undefined || last < seq) this.noteSeq(job, seq);
    }
  }

  /** Drop everything queued; later pushes are ignored. */
  dispose(): void {
    this.closed = true;
    this.clear();
    this.held.drop();
    this.gate = null;
    cancelWrite(this);
  }

  /** Write queued items until the queue is empty, a hold blocks it, or the socket is full. */
  flush(): void {
    const queue = this.queue;
    if (queue === null || this.waiting || this.closed) return;
    const socket = this.socket;
    if (socket.readyState !== OPEN) {
      this.clear();
      return;
    }
    const threshold = this.config.writeThresholdBytes ?? DEFAULT_WRITE_THRESHOLD;
    const raw = rawSocket(socket);
    let written = 0;
    raw?.cork();
    try {
      while (this.head < queue.length) {
        const item = queue[this.head];
        if (item === null) {
          this.head++;
          continue;
        }
        const bytes = isDelivery(item) ? this.encode(item)! : item;
        const full = socket.bufferedAmount + bytes.length >= threshold;
        queue[this.head++] = null;
        this.queued -= bytes.length;
        written++;
        if (full) {
          // Resume once this frame has reached the kernel, rather than piling
          // more onto a socket whose peer is not reading: what stays queued can
          // still collapse, what the socket holds cannot.
          this.waiting = true;
          socket.send(bytes, TEXT, this.onWritten);
          break;
        }
        socket.send(bytes, TEXT);
      }
    } finally {
      raw?.uncork();
    }
    if (written > 0) countWritten(this.config, written);
    this.compact();
  }

  private readonly onWritten = (err?: Error): void => {
    this.waiting = false;
    if (!err && !this.closed) scheduleWrite(this);
  };

  // -------------------------------------------------------------------------

  private encode(delivery: Delivery): Buffer | null {
    return (this.config.encode ?? encodeNative)(delivery);
  }

  private sizeOf(item: Delivery | Buffer): number {
    return isDelivery(item) ? (this.encode(item)?.length ?? 0) : item.length;
  }

  private total(): number {
    return this.queued + this.socket.bufferedAmount;
  }

  /**
   * Queue a reply in its held place, then what waited behind it: the deliveries
   * through `push` (which drops those the reply covers), the other replies
   * through `send`, until a hold whose reply is still being computed.
   */
  private fill(message: Buffer, seen: SnapshotSeqs | undefined, behind: HeldItem[]): void {
    if (seen) this.cover(seen);
    this.send(message);
    for (let i = 0; i < behind.length; i++) {
      const item = behind[i]!;
      if (!(item instanceof Hold)) {
        if (isDelivery(item)) this.push(item);
        else this.send(item);
        continue;
      }
      if (item.reply !== undefined) {
        this.fill(item.reply, item.seen, behind.slice(i + 1));
        return;
      }
      // Still being computed: it blocks the queue now.
      this.gate = item;
      this.held.start();
      for (const rest of behind.slice(i + 1)) this.keep(rest, this.heldSize(rest));
      return;
    }
  }

  /** Hold a delivery behind the pending reply; false when it has no message or overflows. */
  private holdBack(delivery: Delivery): boolean {
    const bytes = this.encode(delivery);
    if (bytes === null) return false;
    if (this.total() + bytes.length > this.config.hardBytes) {
      this.overflow();
      return false;
    }
    this.keep(delivery, bytes.length);
    return true;
  }

  /** Held bytes count as queued: they are bounded by the same limits. */
  private keep(item: HeldItem, size: number): void {
    this.held.offer(item);
    this.queued += size;
    this.notePeak();
  }

  private heldSize(item: HeldItem): number {
    return item instanceof Hold ? 0 : this.sizeOf(item);
  }

  private append(item: Delivery | Buffer, size: number): number {
    const queue = (this.queue ??= []);
    queue.push(item);
    this.queued += size;
    this.notePeak();
    scheduleWrite(this);
    return queue.length - 1;
  }

  private admitReply(size: number): boolean {
    const before = this.total();
    if (before > this.config.softBytes && before + size > this.config.hardBytes) {
      this.overflow();
      return false;
    }
    return true;
  }

  private notePeak(): void {
    const total = this.total();
    if (total > this.peak) this.peak = total;
  }

  private noteSeq(job: string, seq: number): void {
    const map = (this.lastSeq ??= new BoundedMap(MAX_TRACKED_JOBS));
    // Below the cap the order does not matter; at the cap the job is re-inserted so
    // that the map's order is least recently updated first and eviction is LRU.
    if (map.size >= MAX_TRACKED_JOBS) map.delete(job);
    map.set(job, seq);
  }

  /**
   * Entering collapse mode: keep only the newest queued collapsible delivery of
   * each job, and remember where it is so later pushes replace it in O(1).
   */
  private collapseAll(): void {
    const latest = new Map<string, number>();
    this.latest = latest;
    const queue = this.queue;
    if (queue === null) return;
    let dropped = 0;
    for (let i = queue.length - 1; i >= this.head; i--) {
      const item = queue[i];
      if (!isDelivery(item) || !item.collapsible) continue;
      if (latest.has(item.job)) {
        queue[i] = null;
        this.queued -= this.sizeOf(item);
        dropped++;
      } else {
        latest.set(item.job, i);
      }
    }
    if (dropped > 0) this.config.metrics?.collapsed.inc(dropped);
  }

  /** Drop the newest queued collapsible delivery of a job: a newer one replaces it. */
  private dropLatest(job: string): void {
    const latest = this.latest;
    const queue = this.queue;
    if (latest === null || queue === null) return;
    const index = latest.get(job);
    if (index === undefined) return;
    latest.delete(job);
    const item = index >= this.head ? queue[index] : null;
    if (!isDelivery(item) || item.job !== job || !item.collapsible) return;
    queue[index] = null;
    this.queued -= this.sizeOf(item);
    this.config.metrics?.collapsed.inc();
  }

  private overflow(): void {
    if (this.closed) return;
    this.config.metrics?.slowReaderCloses.inc();
    this.dispose();
    this.onOverflow();
  }

  private clear(): void {
    this.queue = null;
    this.head = 0;
    this.queued = 0;
    this.latest = null;
    this.lastSeq = null;
  }

  /** Release the array when drained; trim flushed slots; leave collapse mode below the soft limit. */
  private compact(): void {
    const queue = this.queue;
    if (queue === null) return;
    if (this.head >= queue.length) {
      this.queue = null;
      this.head = 0;
      this.latest = null;
      return;
    }
    if (this.latest !== null && this.total() <= this.config.softBytes) this.latest = null;
    if (this.head > COMPACT_AFTER && this.head * 2 > queue.length) {
      const shift = this.head;
      this.queue = queue.slice(shift);
      this.head = 0;
      if (this.latest !== null) for (const [job, i] of this.latest) this.latest.set(job, i - shift);
    }
  }
}

function isDelivery(item: Item | HeldItem | undefined): item is Delivery {
  return item instanceof Delivery;
}

/** The TCP socket under a `ws` WebSocket, corked around a batch so that it goes out in one write. */
function rawSocket(socket: OutboxSocket): { cork(): void; uncork(): void } | undefined {
  const raw = (socket as { _socket?: { cork?: unknown; uncork?: unknown } })._socket;
  return raw && typeof raw.cork === 'function' && typeof raw.uncork === 'function'
    ? (raw as { cork(): void; uncork(): void })
    : undefined;
}
