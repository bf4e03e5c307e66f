/**
 * Collapse mode of an outbox (see `outbox.ts`): past its soft limit, queued
 * collapsible deliveries of a job give way to the newest. In delta mode a
 * dropped delivery's patch is not lost: the next queued delivery of its job
 * carries the merge of the dropped patches and its own, so that it folds onto
 * the state the reader had.
 */
import { Delivery } from './delivery.js';
import { mergePatches } from './state-patch.js';

/** The outbox's queue as collapse sees it. */
export interface CollapseQueue {
  readonly items: (Delivery | Buffer | null)[];
  readonly head: number;
  /** Deliveries carry patches. */
  readonly delta: boolean;
  /** Index of the newest queued reply; -1: none. */
  readonly replyAt: number;
  /** Bytes of a delivery as the outbox writes it. */
  sizeOf(item: Delivery): number;
}

export class Collapse {
  /** Index of the newest queued collapsible delivery per job. */
  private readonly latest = new Map<string, number>();
  /** Index of the newest queued delivery of any kind per job. */
  private readonly tail = new Map<string, number>();
  /** Queued bytes this collapse removed (negative) or added (merged patches) since last read. */
  bytes = 0;
  /** Deliveries dropped since last read. */
  dropped = 0;

  /** Enter collapse mode: keep only the newest queued collapsible delivery of each job. */
  constructor(private readonly q: CollapseQueue) {
    const queue = q.items;
    /** Delta mode: per job, the next queued delivery, which takes the patches of those dropped before it. */
    const next = new Map<string, { index: number; crossed: boolean }>();
    for (let i = queue.length - 1; i >= q.head; i--) {
      const item = queue[i];
      if (item === null || item === undefined) continue;
      if (!(item instanceof Delivery)) {
        for (const n of next.values()) n.crossed = true;
        continue;
      }
      if (!this.tail.has(item.job)) this.tail.set(item.job, i);
      if (item.collapsible && this.latest.has(item.job)) {
        this.remove(i, item);
        const n = next.get(item.job);
        if (q.delta && n) this.mergeInto(n.index, item, n.crossed);
        continue;
      }
      if (item.collapsible) this.latest.set(item.job, i);
      if (q.delta) next.set(item.job, { index: i, crossed: false });
    }
  }

  /** A delivery was queued at `index`. */
  queued(d: Delivery, index: number): void {
    if (d.collapsible) this.latest.set(d.job, index);
    this.tail.set(d.job, index);
  }

  /**
   * Drop the newest queued collapsible delivery of a job: `incoming` replaces it.
   * Returns `incoming`, or in delta mode its copy with the dropped patch merged in.
   */
  drop(incoming: Delivery): Delivery {
    const { q } = this;
    const job = incoming.job;
    const index = this.latest.get(job);
    if (index === undefined) return incoming;
    this.latest.delete(job);
    const item = index >= q.head ? q.items[index] : null;
    if (!(item instanceof Delivery) || item.job !== job || !item.collapsible) return incoming;
    this.remove(index, item);
    if (!q.delta) return incoming;
    const tail = this.tail.get(job);
    if (tail === undefined || tail <= index) {
      // The next delivery of the job is the incoming one. A reply in between may
      // be a snapshot of the job: then every field, never an older value.
      const patch = q.replyAt > index ? incoming.state : mergePatches([item.patch, incoming.patch]);
      return incoming.rebased(patch);
    }
    let crossed = false;
    for (let i = index + 1; i <= tail; i++) {
      const after = q.items[i];
      if (after === null || after === undefined) continue;
      if (!(after instanceof Delivery)) crossed = true;
      else if (after.job === job) {
        this.mergeInto(i, item, crossed);
        break;
      }
    }
    return incoming;
  }

  /** The queue's front was cut by `shift` slots. */
  shift(shift: number): void {
    for (const [job, i] of this.latest) this.latest.set(job, i - shift);
    for (const [job, i] of this.tail) this.tail.set(job, i - shift);
  }

  private remove(index: number, item: Delivery): void {
    this.q.items[index] = null;
    this.bytes -= this.q.sizeOf(item);
    this.dropped++;
  }

  /** Delta mode: the queued delivery at `index` takes the patch of `dropped`, an earlier one of its job. */
  private mergeInto(index: number, dropped: Delivery, crossed: boolean): void {
    const target = this.q.items[index] as Delivery;
    const patch = crossed ? target.state : mergePatches([dropped.patch, target.patch]);
    const merged = target.rebased(patch);
    this.q.items[index] = merged;
    this.bytes += this.q.sizeOf(merged) - this.q.sizeOf(target);
  }
}
