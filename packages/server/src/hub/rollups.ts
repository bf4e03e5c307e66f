import type { EventDataMap, EventKind, JobEvent, JobState } from '@headway/protocol';
import { applyChildChange, isTerminal, prepareEvent, reduce, rollupOutcome } from '../state/index.js';
import type { Batch, GroupCommit, PendingWrite } from './group-commit.js';
import type { Entry, JobCache } from './job-cache.js';

/** What roll-up staging needs of the hub. */
export interface RollupsContext {
  cache: Pick<JobCache, 'get' | 'load'>;
  commits: Pick<GroupCommit, 'addWrite'>;
  /** The time stamped on a roll-up's events, ISO 8601. */
  isoNow(): string;
}

/**
 * A parent (batch) job's roll-up of its children. A child's change is noted in
 * its parent's pending summary as a (before, after) pair and folded into the
 * parent's write right before the batch commits, so that a batch of many child
 * reports writes one `children` event per parent, and a parent's `completed`
 * (all children done) lands in the same commit as its last child's.
 */
export class Rollups {
  constructor(private readonly ctx: RollupsContext) {}

  /** A child job moved from `before` to `after`: roll it up into its parent in the open batch. */
  noteParent(parentId: string, before: JobState, after: JobState): void {
    if (!movesRollup(before, after)) return;
    const parent = this.ctx.cache.get(parentId);
    if (parent) {
      this.noteChildChange(parent, before, after);
      return;
    }
    // Evicted since the child was loaded: roll up in a later batch. Changes are
    // (before, after) pairs, so their order does not matter.
    this.ctx.cache
      .load(parentId)
      .then((p) => {
        if (p && !p.stale) this.noteChildChange(p, before, after);
      })
      .catch(() => {});
  }

  /**
   * Record a child's change (null: created or deleted) in its parent's pending
   * roll-up; the parent is written in `batch` (default: the open one).
   */
  noteChildChange(parent: Entry, before: JobState | null, after: JobState | null, batch?: Batch): void {
    parent.rollup = applyChildChange(parent.rollup ?? parent.head.children, before, after);
    // The parent is written even if no child write lands in the same batch.
    this.ctx.commits.addWrite(parent.head.id, parent, parent.head.seq, false, batch);
  }

  /** Fold pending children summaries into their parents' writes, parents of parents included. */
  foldInto(batch: Batch): void {
    for (let again = true; again; ) {
      again = false;
      // Map iteration also visits the grandparents that this loop adds.
      for (const [id, w] of batch.writes) {
        const entry = w.entry;
        const summary = entry.rollup;
        if (!summary) continue;
        again = true;
        entry.rollup = null;
        if (this.ctx.cache.get(id) !== entry || isTerminal(entry.head.status)) continue;
        const before = entry.head;
        let head = this.append(w, 'children', summary);
        const outcome = rollupOutcome(head, summary);
        if (outcome) {
          const { kind, data } = prepareEvent(head, outcome);
          head = this.append(w, kind, data);
        }
        if (!head.parent) continue;
        const grand = this.ctx.cache.get(head.parent);
        if (!grand) this.noteParent(head.parent, before, head);
        else if (movesRollup(before, head)) this.noteChildChange(grand, before, head, batch);
      }
    }
  }

  private append<K extends EventKind>(w: PendingWrite, kind: K, data: EventDataMap[K]): JobState {
    const entry = w.entry;
    const event: JobEvent = {
      job: entry.head.id,
      seq: entry.head.seq + 1,
      kind,
      data,
      at: this.ctx.isoNow(),
    };
    entry.head = reduce(entry.head, event);
    w.events.push(event);
    w.states.push(entry.head);
    return entry.head;
  }
}

/** Whether a child's change alters its parent's roll-up (which counts statuses and percents only). */
function movesRollup(before: JobState, after: JobState): boolean {
  return before.status !== after.status || before.progress.percent !== after.progress.percent;
}
