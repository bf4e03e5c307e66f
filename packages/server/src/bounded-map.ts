/**
 * A `Map` that holds at most `limit` entries: setting a new key past the limit
 * drops the oldest one (insertion order). `touch` moves a key to the young end,
 * which makes it a least-recently-used cache. Entries that `keep` pins (say, a
 * job that subscribers still watch) are passed over, so the map may stay over
 * its limit while every entry is pinned.
 *
 * Every per-process table that grows with the number of jobs or connections
 * seen (idempotency keys, delivered seqs, parked deliveries) is one of these,
 * so none of them grows without bound.
 */
export class BoundedMap<K, V> extends Map<K, V> {
  constructor(
    readonly limit: number,
    /** Called with each entry dropped to make room. */
    private readonly onEvict?: (key: K, value: V) => void,
    /** Entries it returns true for are not evicted. Default: none is pinned. */
    private readonly keep?: (key: K, value: V) => boolean,
  ) {
    super();
    if (!(limit >= 1)) throw new RangeError(`BoundedMap limit must be at least 1, got ${limit}`);
  }

  override set(key: K, value: V): this {
    super.set(key, value);
    if (this.size > this.limit) this.evictOldest();
    return this;
  }

  private evictOldest(): void {
    // Deleting the entry under the iterator is safe: a Map iterator skips deleted entries.
    for (const [key, value] of super.entries()) {
      if (this.size <= this.limit) return;
      if (this.keep?.(key, value)) continue;
      super.delete(key);
      this.onEvict?.(key, value);
    }
  }

  /** The value of `key`, moved to the young end; undefined when absent. */
  touch(key: K): V | undefined {
    if (!super.has(key)) return undefined;
    const value = super.get(key) as V;
    super.delete(key);
    super.set(key, value);
    return value;
  }
}
