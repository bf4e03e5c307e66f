/**
 * Paces the accepting of WebSocket upgrades, so that a storm of them (every
 * client of a restarted hub reconnecting at once) cannot hold the event loop
 * while live deliveries wait.
 *
 * Node hands the hub every upgrade request that arrived together in one turn of
 * the event loop; accepting one (the handshake, the token, the first messages)
 * costs a few hundred microseconds, so a thousand at once would keep the
 * deliveries of that turn waiting for a few hundred milliseconds. Instead each
 * upgrade is queued and the queue is worked off in slices of at most `sliceMs`
 * per turn (`setImmediate`), between which the outboxes' write tick runs.
 */

/** Time spent accepting upgrades per turn of the event loop, ms. */
export const UPGRADE_SLICE_MS = 4;

export class UpgradePacer {
  private readonly queue: (() => void)[] = [];
  private head = 0;
  private scheduled: NodeJS.Immediate | null = null;

  constructor(
    private readonly sliceMs: number = UPGRADE_SLICE_MS,
    /** Milliseconds, monotonic; injected by tests. */
    private readonly now: () => number = () => performance.now(),
  ) {}

  /** Upgrades waiting for their turn. */
  get waiting(): number {
    return this.queue.length - this.head;
  }

  /** Run `accept` in the next slice with room for it, after those queued before it. */
  push(accept: () => void): void {
    this.queue.push(accept);
    this.scheduled ??= setImmediate(this.drain);
  }

  /** Give up on what waits: `dropped` is called for each (the server is shutting down). */
  clear(dropped: (accept: () => void) => void): void {
    if (this.scheduled) clearImmediate(this.scheduled);
    this.scheduled = null;
    const rest = this.queue.slice(this.head);
    this.queue.length = 0;
    this.head = 0;
    for (const accept of rest) dropped(accept);
  }

  private readonly drain = (): void => {
    this.scheduled = null;
    const deadline = this.now() + this.sliceMs;
    while (this.head < this.queue.length) {
      const accept = this.queue[this.head]!;
      this.queue[this.head++] = undefined as never;
      accept();
      if (this.now() >= deadline) break;
    }
    if (this.head >= this.queue.length) {
      this.queue.length = 0;
      this.head = 0;
    } else {
      this.scheduled = setImmediate(this.drain);
    }
  };
}
