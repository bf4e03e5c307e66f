import type { Logger } from 'pino';
import type { Auth } from './auth.js';
import type { Hub } from './hub.js';
import type { Metrics } from './metrics.js';
import type { HeadwayOptions } from './options.js';
import type { OriginPolicy } from './origins.js';
import type { WebhookRegistry } from './webhooks/registry.js';

/** What every transport needs from the server that hosts it. */
export interface ServerContext {
  hub: Hub;
  auth: Auth;
  metrics: Metrics;
  logger: Logger;
  options: HeadwayOptions;
  origins: OriginPolicy;
  /** Connections per user across all transports; `acquire` fails past the limit. */
  connections: ConnectionLimiter;
  /** The webhooks of the store (docs/webhooks.md). */
  webhooks: WebhookRegistry;
}

/**
 * Open connections per user, across all transports. `acquire` may answer
 * asynchronously (the Redis counter counts across processes): callers await it,
 * and give the slot back with `release` if the connection closed meanwhile.
 */
export interface ConnectionLimiter {
  /** Count one more connection for the user; false when the user is at the limit. */
  acquire(user: string): boolean | Promise<boolean>;
  release(user: string): void;
  /** Connections counted for the user. */
  count(user: string): number | Promise<number>;
  /** Stop background work (heartbeats). */
  close?(): Promise<void>;
}

/** The counter of one process. */
export class ConnectionCounter implements ConnectionLimiter {
  private readonly perUser = new Map<string, number>();
  constructor(private readonly limit: number) {}

  acquire(user: string): boolean {
    const n = this.perUser.get(user) ?? 0;
    if (n >= this.limit) return false;
    this.perUser.set(user, n + 1);
    return true;
  }

  release(user: string): void {
    const n = this.perUser.get(user) ?? 0;
    if (n <= 1) this.perUser.delete(user);
    else this.perUser.set(user, n - 1);
  }

  count(user: string): number {
    return this.perUser.get(user) ?? 0;
  }
}
