/**
 * A small typed event emitter: one `ctx` object per event. A listener that
 * throws does not keep the others from running; its error is rethrown on a
 * later tick, where it is reported like any uncaught error.
 */
export class Emitter<M extends object> {
  private l = new Map<keyof M, Set<(ctx: never) => void>>();

  /** Listen to `type`; returns a function that stops listening. */
  on<K extends keyof M>(type: K, listener: (ctx: M[K]) => void): () => void {
    let set = this.l.get(type);
    if (!set) this.l.set(type, (set = new Set()));
    set.add(listener);
    return () => this.off(type, listener);
  }

  off<K extends keyof M>(type: K, listener: (ctx: M[K]) => void): void {
    this.l.get(type)?.delete(listener);
  }

  /** @internal */
  emit<K extends keyof M>(type: K, ctx: M[K]): void {
    for (const fn of this.l.get(type) ?? []) {
      try {
        (fn as (ctx: M[K]) => void)(ctx);
      } catch (err) {
        setTimeout(() => {
          throw err;
        });
      }
    }
  }
}
