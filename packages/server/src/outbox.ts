import type { Delivery } from './delivery.js';
import { Collapse, type CollapseQueue } from './outbox-collapse.js';
import {
  EMPTY,
  frameSocket,
  Hold,
  isDeliveryItem as isDelivery,
  JobSeqs,
  type OutboxConfig,
  type OutboxSocket,
  rawSocket,
  textFrame,
} from './outbox-parts.js';
import { SnapshotHold, type SnapshotSeqs } from './snapshot-hold.js';
import { cancelWrite, countWritten, scheduleWrite } from './write-tick.js';

export { Hold, type OutboxConfig, type OutboxSocket };

/** Who the outbox tells of an overflow: the connection (its own method, not a closure per connection). */
export interface OverflowListener {
  overflowed(): void;
}

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

type Item = Delivery | Buffer | null;
/** What waits behind a pending reply. */
type HeldItem = Delivery | Buffer | Hold;

const OPEN = 1;
const DEFAULT_WRITE_THRESHOLD = 64 * 1024; // 64 KiB
/** Flushed slots at the front of the queue tolerated before the array is compacted. */
const COMPACT_AFTER = 1024;

const encodeNative = (d: Delivery): Buffer => d.native;
const encodeDelta = (d: Delivery): Buffer => d.delta;

/** Frame options shared by every send, so none is allocated per message. */
const TEXT = { binary: false } as const;

export class Outbox {
  private queue: Item[] | null = null;
  private head = 0;
  private queued = 0;
  private peak = 0;
  /** Last seq queued per job (insertion order = least recently updated first). */
  private lastSeq: JobSeqs | null = null;
  /** What arrives while a reply is computed waits here, behind `gate`. */
  private readonly held = new SnapshotHold<HeldItem>();
  /** The pending reply everything held waits for; null when none. */
  private gate: Hold | null = null;
  /** Collapse mode, past the soft limit; null below it. */
  private collapse: Collapse | null = null;
  /** Index of the newest reply in the queue; -1: none. */
  replyAt = -1;
  /** A write callback is pending: the socket is above the write threshold. */
  private waiting = false;
  private closed = false;
  /** Deliveries carry `patch` instead of `state`; see `setDelta`. */
  private delta = false;
  /** The write callback, made the first time a socket fills up. */
  private onWritten: ((err?: Error | null) => void) | null = null;

  constructor(
    private readonly socket: OutboxSocket,
    private readonly config: OutboxConfig,
    /** Told once when the queue passes the hard limit; it closes the connection. */
    private readonly owner: OverflowListener,
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
    const last = this.seqOf(job);
    if (last !== undefined && seq <= last) return false;
    // Its seq is noted when it leaves the hold: the reply may cover it.
    if (this.held.holding) return this.holdBack(delivery);
    // A patch applies to the state right before it; a client that has another
    // one of the job (or none) gets every field.
    if (this.delta && last !== seq - 1) delivery = delivery.rebased(delivery.state);
    this.noteSeq(job, seq);
    let bytes = this.encode(delivery);
    if (bytes === null) return false;
    if (this.total() + bytes.length > this.config.softBytes) {
      this.collapse ??= new Collapse(this.collapseView());
      if (delivery.collapsible) {
        delivery = this.collapse.drop(delivery);
        bytes = this.encode(delivery)!;
      }
      this.settleCollapse();
    }
    const size = bytes.length;
    if (this.total() + size > this.config.hardBytes) {
      this.overflow();
      return false;
    }
    const index = this.append(delivery, size);
    this.collapse?.queued(delivery, index);
    return true;
  }

  /**
   * Delta mode: deliveries carry `patch` instead of `state`. Queued items are
   * written in the new mode (their byte count is taken again); a patch queued in
   * full mode is written with its state, which a delta client also reads.
   */
  setDelta(on: boolean): void {
    if (on === this.delta) return;
    const before = this.resizeAll();
    this.delta = on;
    this.queued += this.resizeAll() - before;
  }

  /**
   * Queue a reply or other message, in order with the deliveries. A reply is
   * refused (overflow) only when the connection was already behind.
   */
  send(message: Buffer): void {
    if (this.closed) return;
    if (!this.admitReply(message.length)) return;
    if (this.held.holding) this.keep(message, message.length);
    else this.replyAt = this.append(message, message.length);
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
      const last = this.seqOf(job);
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
    const frames = frameSocket(socket);
    let written = 0;
    raw?.cork();
    try {
      while (this.head < queue.length) {
        const item = queue[this.head];
        if (item === null) {
          this.head++;
          continue;
        }
        const delivery = isDelivery(item) ? item : null;
        const bytes = delivery ? this.encode(delivery)! : (item as Buffer);
        const full = socket.bufferedAmount + bytes.length >= threshold;
        queue[this.head++] = null;
        this.queued -= bytes.length;
        written++;
        // Resume once a frame written above the threshold has reached the kernel,
        // rather than piling more onto a socket whose peer is not reading: what
        // stays queued can still collapse, what the socket holds cannot.
        const done = full ? (this.onWritten ??= (err) => this.written(err)) : undefined;
        if (full) this.waiting = true;
        // A delivery's frame is made once for every connection; a reply is framed by `ws`.
        if (delivery && frames) frames.write(delivery.framed(bytes, textFrame), done);
        else socket.send(bytes, TEXT, done);
        if (full) break;
      }
    } finally {
      raw?.uncork();
    }
    if (written > 0) countWritten(this.config, written);
    this.compact();
  }

  /** The socket took a frame written above the threshold: writing resumes. */
  private written(err?: Error | null): void {
    this.waiting = false;
    if (!err && !this.closed) scheduleWrite(this);
  }

  // -------------------------------------------------------------------------

  private encode(delivery: Delivery): Buffer | null {
    if (this.delta) return (this.config.encodeDelta ?? encodeDelta)(delivery);
    return (this.config.encode ?? encodeNative)(delivery);
  }

  /** Bytes of everything queued and held, in the current mode. */
  private resizeAll(): number {
    let bytes = 0;
    const queue = this.queue;
    if (queue !== null)
      for (let i = this.head; i < queue.length; i++) bytes += this.sizeOf(queue[i] ?? EMPTY);
    for (const item of this.held.peek()) bytes += this.heldSize(item);
    return bytes;
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

  /** The last seq queued of `job`; undefined when none. */
  private seqOf(job: string): number | undefined {
    return this.lastSeq?.get(job);
  }

  private noteSeq(job: string, seq: number): void {
    (this.lastSeq ??= new JobSeqs()).note(job, seq);
  }

  /** What collapse sees of the queue. */
  private collapseView(): CollapseQueue {
    const outbox = this;
    return {
      get items() {
        return outbox.queue ?? [];
      },
      get head() {
        return outbox.head;
      },
      get delta() {
        return outbox.delta;
      },
      get replyAt() {
        return outbox.replyAt;
      },
      sizeOf: (item) => this.sizeOf(item),
    };
  }

  /** Account for what collapse removed and merged. */
  private settleCollapse(): void {
    const c = this.collapse!;
    this.queued += c.bytes;
    if (c.dropped > 0) this.config.metrics?.collapsed.inc(c.dropped);
    c.bytes = 0;
    c.dropped = 0;
  }

  private overflow(): void {
    if (this.closed) return;
    this.config.metrics?.slowReaderCloses.inc();
    this.dispose();
    this.owner.overflowed();
  }

  private clear(): void {
    this.queue = null;
    this.head = 0;
    this.queued = 0;
    this.collapse = null;
    this.replyAt = -1;
    this.lastSeq = null;
  }

  /** Release the array when drained; trim flushed slots; leave collapse mode below the soft limit. */
  private compact(): void {
    const queue = this.queue;
    if (queue === null) return;
    if (this.head >= queue.length) {
      this.queue = null;
      this.head = 0;
      this.collapse = null;
      this.replyAt = -1;
      return;
    }
    if (this.collapse !== null && this.total() <= this.config.softBytes) this.collapse = null;
    if (this.head > COMPACT_AFTER && this.head * 2 > queue.length) {
      const shift = this.head;
      this.queue = queue.slice(shift);
      this.head = 0;
      this.replyAt = Math.max(-1, this.replyAt - shift);
      this.collapse?.shift(shift);
    }
  }
}
