/**
 * Hold deliveries while a snapshot is read.
 *
 * The rule that keeps a reader from missing an event or seeing one twice:
 * listen first, then read the snapshot (a job's state, a replay from the store,
 * a page of a user's jobs). An event committed meanwhile may or may not be in
 * the snapshot, so its delivery is held; once the snapshot is in hand, the held
 * deliveries it already covers (per job, a seq at or below the one the snapshot
 * brought the reader to) are dropped and the others are handed on in the order
 * they arrived.
 *
 * Used by the outbox (a reply computed asynchronously, `Outbox.hold`), SSE
 * streams and WebSocket connections (their first messages), and by the hub
 * while it reads back what the bus lost.
 *
 * ```ts
 * const hold = new SnapshotHold<Delivery>(1_000);
 * hold.start();                       // before subscribing
 * // on each delivery:
 * switch (hold.offer(d)) {
 *   case 'held': return;              // kept until release
 *   case 'full': closeAsSlowReader(); return;
 *   case 'open': send(d);             // not holding: hand it on now
 * }
 * // once the snapshot is read and sent:
 * for (const d of hold.release(snapshotSeqs)) send(d);
 * ```
 *
 * Items that are not deliveries (a reply queued behind a pending one) may be
 * held too: `release` filters only items with a `job` and a `seq`.
 */

/** A held item that a snapshot can cover: one job's event. */
export interface Sequenced {
  readonly job: string;
  readonly seq: number;
}

/** Per job, the seq a snapshot brought its reader up to. */
export type SnapshotSeqs = Iterable<readonly [job: string, seq: number]>;

/** What `offer` did with an item. */
export type HoldVerdict = 'held' | 'full' | 'open';

export class SnapshotHold<T extends object> {
  private items: T[] | null = null;

  constructor(
    /** Most items held at once; past it `offer` answers `full` and the caller gives up on the reader. */
    readonly limit: number = Number.POSITIVE_INFINITY,
  ) {}

  /** True between `start` and `release`. */
  get holding(): boolean {
    return this.items !== null;
  }

  /** Items held now. */
  get size(): number {
    return this.items?.length ?? 0;
  }

  /** Start holding; while already holding, nothing changes (one release ends both). */
  start(): void {
    this.items ??= [];
  }

  /** Hold `item` while a snapshot is read: `open` when not holding (the caller hands it on). */
  offer(item: T): HoldVerdict {
    const items = this.items;
    if (items === null) return 'open';
    if (items.length >= this.limit) return 'full';
    items.push(item);
    return 'held';
  }

  /**
   * Stop holding and return what was held, in arrival order, without the
   * deliveries `covered` already brought the reader (seq at or below its seq of
   * the job). Not holding: an empty list.
   */
  release(covered?: SnapshotSeqs): T[] {
    const items = this.items ?? [];
    this.items = null;
    if (covered === undefined) return items;
    const upTo = new Map(covered);
    if (upTo.size === 0) return items;
    return items.filter((item) => !isCovered(item, upTo));
  }

  /** Stop holding and drop what was held (the reader is gone). */
  drop(): void {
    this.items = null;
  }
}

/** Whether a snapshot that reached `upTo` (seq per job) already holds this item's event. */
export function isCovered(item: object, upTo: ReadonlyMap<string, number>): boolean {
  if (!isSequenced(item)) return false;
  const seq = upTo.get(item.job);
  return seq !== undefined && item.seq <= seq;
}

function isSequenced(item: object): item is Sequenced {
  const { job, seq } = item as Partial<Sequenced>;
  return typeof job === 'string' && typeof seq === 'number';
}
