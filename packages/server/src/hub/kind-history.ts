import type { JobState } from '@headway/protocol';
import { BoundedMap } from '../bounded-map.js';
import { durationSample, estimatorOf, type KindSummary, learn } from '../state/index.js';
import type { Store } from '../store/store.js';

/** Kinds whose summary is kept in memory. */
const CACHED_KINDS = 1000;
/** Attempts of one update that keeps losing the race with other processes. */
const MAX_LEARN_ATTEMPTS = 8;

/** What the kind history needs of the hub. */
export interface KindHistoryContext {
  store: Pick<Store, 'getKindSummary' | 'saveKindSummary'>;
  /** How long a cached summary is trusted before it is read again (other processes learn too), ms. */
  refreshMs: number;
  now(): number;
  /** Reports a failed update; learning is best effort and never fails a write. */
  onError(err: unknown): void;
}

interface Cached {
  summary: KindSummary | null;
  version: number;
  readAt: number;
}

/**
 * The learned durations of each job kind: read from the store on first use and
 * re-read after `refreshMs` (other processes sharing PostgreSQL learn too),
 * updated when a job of the kind completes. The reducer gets a summary by
 * `peek`, synchronously; a write `load`s it first.
 */
export class KindHistory {
  private readonly cached = new BoundedMap<string, Cached>(CACHED_KINDS);
  private readonly loading = new Map<string, Promise<KindSummary | null>>();
  /** Per kind, the update under way: one at a time, so a process never races itself. */
  private readonly learning = new Map<string, Promise<void>>();

  constructor(private readonly ctx: KindHistoryContext) {}

  /** The kind's summary as cached; null for no kind, an unknown kind or one not loaded yet. */
  peek(kind: string | null | undefined): KindSummary | null {
    return kind ? (this.cached.get(kind)?.summary ?? null) : null;
  }

  /**
   * The kind's summary if `load` would answer it without reading the store
   * (null for no kind), undefined if it must be read.
   */
  fresh(kind: string | null | undefined): KindSummary | null | undefined {
    if (!kind) return null;
    const hit = this.cached.get(kind);
    return hit && this.ctx.now() - hit.readAt < this.ctx.refreshMs ? hit.summary : undefined;
  }

  /** The kind's summary, read from the store when not cached or cached too long. */
  async load(kind: string | null | undefined): Promise<KindSummary | null> {
    const fresh = this.fresh(kind);
    if (fresh !== undefined || !kind) return fresh ?? null;
    const hit = this.cached.get(kind);
    let pending = this.loading.get(kind);
    if (!pending) {
      pending = this.read(kind)
        .catch((err) => {
          // An estimate without history beats a failed write.
          this.ctx.onError(err);
          return hit?.summary ?? null;
        })
        .finally(() => this.loading.delete(kind));
      this.loading.set(kind, pending);
    }
    return pending;
  }

  private async read(kind: string): Promise<KindSummary | null> {
    const stored = await this.ctx.store.getKindSummary(kind);
    const entry = { summary: stored?.summary ?? null, version: stored?.version ?? 0, readAt: this.ctx.now() };
    this.cached.set(kind, entry);
    return entry.summary;
  }

  /** Learn from a job that just completed (committed); resolves when the store has it. */
  learnFrom(state: JobState): Promise<void> {
    const kind = state.kind;
    const sample = durationSample(estimatorOf(state));
    if (!kind || state.status !== 'completed' || sample === null) return Promise.resolve();
    const previous = this.learning.get(kind) ?? Promise.resolve();
    const next = previous
      .then(() => this.update(kind, (summary) => learn(summary, sample)))
      .catch((err) => this.ctx.onError(err))
      .finally(() => {
        if (this.learning.get(kind) === next) this.learning.delete(kind);
      });
    this.learning.set(kind, next);
    return next;
  }

  /** Resolves when every update started so far is done. */
  async settled(): Promise<void> {
    while (this.learning.size > 0) await Promise.all(this.learning.values());
  }

  private async update(kind: string, change: (summary: KindSummary | null) => KindSummary): Promise<void> {
    for (let attempt = 1; attempt <= MAX_LEARN_ATTEMPTS; attempt++) {
      const stored = await this.ctx.store.getKindSummary(kind);
      const summary = change(stored?.summary ?? null);
      const version = stored?.version ?? 0;
      if (await this.ctx.store.saveKindSummary(kind, summary, version)) {
        this.cached.set(kind, { summary, version: version + 1, readAt: this.ctx.now() });
        return;
      }
    }
    throw new Error(`kind "${kind}": gave up learning after ${MAX_LEARN_ATTEMPTS} conflicting updates`);
  }
}
