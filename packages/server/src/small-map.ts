/**
 * A map for what almost always holds one entry, such as a connection's
 * subscriptions: the first entry lives in two fields, and a real `Map` (from
 * `makeMap`, say a `BoundedMap`) is made only when a second one arrives. An idle
 * connection with one subscription saves the hash table a `Map` allocates
 * (about 150 bytes) this way.
 *
 * Iteration follows insertion order, as a `Map`'s does.
 */
export class SmallMap<K, V> {
  private soleKey: K | undefined = undefined;
  private soleValue: V | undefined = undefined;
  private hasSole = false;
  private many: Map<K, V> | null = null;

  constructor(private readonly makeMap: () => Map<K, V> = newMap) {}

  get size(): number {
    return this.many !== null ? this.many.size : this.hasSole ? 1 : 0;
  }

  get(key: K): V | undefined {
    if (this.many !== null) return this.many.get(key);
    return this.hasSole && this.soleKey === key ? this.soleValue : undefined;
  }

  has(key: K): boolean {
    if (this.many !== null) return this.many.has(key);
    return this.hasSole && this.soleKey === key;
  }

  set(key: K, value: V): this {
    if (this.many !== null) {
      this.many.set(key, value);
    } else if (!this.hasSole || this.soleKey === key) {
      this.soleKey = key;
      this.soleValue = value;
      this.hasSole = true;
    } else {
      this.many = this.makeMap();
      this.many.set(this.soleKey as K, this.soleValue as V);
      this.many.set(key, value);
      this.clearSole();
    }
    return this;
  }

  delete(key: K): boolean {
    if (this.many !== null) return this.many.delete(key);
    if (!this.hasSole || this.soleKey !== key) return false;
    this.clearSole();
    return true;
  }

  clear(): void {
    this.many = null;
    this.clearSole();
  }

  *values(): IterableIterator<V> {
    if (this.many !== null) yield* this.many.values();
    else if (this.hasSole) yield this.soleValue as V;
  }

  *entries(): IterableIterator<[K, V]> {
    if (this.many !== null) yield* this.many.entries();
    else if (this.hasSole) yield [this.soleKey as K, this.soleValue as V];
  }

  [Symbol.iterator](): IterableIterator<[K, V]> {
    return this.entries();
  }

  private clearSole(): void {
    this.soleKey = undefined;
    this.soleValue = undefined;
    this.hasSole = false;
  }
}

/** The default map maker: one function for every `SmallMap`, not a closure each. */
function newMap<K, V>(): Map<K, V> {
  return new Map();
}
