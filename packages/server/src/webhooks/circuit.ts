/**
 * One circuit per webhook, per process: after `failures` failed attempts in a
 * row the webhook is paused (open) for `openMs`, then gets one trial attempt at
 * a time (half-open) until an attempt succeeds (closed) or fails (open again,
 * for twice as long, up to 32 × `openMs`). A receiver that keeps failing thus
 * costs an attempt now and then instead of a steady stream of timeouts.
 */
export type CircuitState = 'closed' | 'open' | 'half-open';

interface Circuit {
  failures: number;
  /** Times opened in a row, for the growing pause. */
  opened: number;
  openUntil: number;
}

/** Longest pause, as a multiple of `openMs`. */
const MAX_OPEN_FACTOR = 32;

export class Circuits {
  private readonly circuits = new Map<string, Circuit>();

  constructor(
    private readonly failures: number,
    private readonly openMs: number,
  ) {}

  state(webhook: string, now: number): CircuitState {
    const c = this.circuits.get(webhook);
    if (!c || c.failures < this.failures) return 'closed';
    return now < c.openUntil ? 'open' : 'half-open';
  }

  succeeded(webhook: string): void {
    this.circuits.delete(webhook);
  }

  /** Record a failed attempt; true when it opened the circuit. */
  failed(webhook: string, now: number): boolean {
    let c = this.circuits.get(webhook);
    if (!c) this.circuits.set(webhook, (c = { failures: 0, opened: 0, openUntil: 0 }));
    c.failures++;
    if (c.failures < this.failures) return false;
    c.openUntil = now + this.openMs * Math.min(MAX_OPEN_FACTOR, 2 ** c.opened);
    c.opened++;
    return true;
  }

  /** Webhooks whose circuit is open now. */
  open(now: number): string[] {
    const out: string[] = [];
    for (const [id, c] of this.circuits) if (c.failures >= this.failures && now < c.openUntil) out.push(id);
    return out;
  }

  forget(webhook: string): void {
    this.circuits.delete(webhook);
  }
}
