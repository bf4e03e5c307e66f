/**
 * Verified browser tokens, kept until they expire: a reconnecting client (every
 * client at once after a restart) presents the token it had, and a cache hit
 * skips the HMAC and the decoding of its claims. Only tokens that
 * verified are kept, each no longer than its `exp`; the least recently used go first.
 */
import type { Principal } from './auth.js';
import { BoundedMap } from './bounded-map.js';

/** Tokens remembered at most. */
const DEFAULT_SIZE = 10_000;

export class TokenCache {
  private readonly entries: BoundedMap<string, Principal>;

  constructor(
    size = DEFAULT_SIZE,
    /** Seconds since epoch. */
    private readonly now: () => number = () => Date.now() / 1000,
  ) {
    this.entries = new BoundedMap(size);
  }

  /** The principal of a token verified before and not expired since, or undefined. */
  get(token: string): Principal | undefined {
    const principal = this.entries.get(token);
    if (principal === undefined) return undefined;
    if (principal.kind === 'user' && principal.exp !== null && principal.exp <= this.now()) {
      this.entries.delete(token);
      return undefined;
    }
    // Re-inserted: least recently used first, the first evicted.
    this.entries.delete(token);
    this.entries.set(token, principal);
    return principal;
  }

  set(token: string, principal: Principal): void {
    this.entries.set(token, principal);
  }

  get size(): number {
    return this.entries.size;
  }
}
