import type { Delivery } from '../delivery.js';

/**
 * Carries committed deliveries to every hub process that has subscribers for them.
 * The memory bus serves one process; a networked bus serves many.
 *
 * What the contract leaves out: ordering across jobs, and delivery guarantees. A
 * bus may lose messages (or, across a reconnect, repeat them); the hub tracks the
 * last seq it dispatched per job, drops repeats, detects a seq gap, and backfills
 * from the store, which is the source of truth. A bus says when it may have lost
 * messages in bulk (`onResync`), and the hub then checks every job it follows.
 *
 * Topic keys are the hub's (`topicKey` in hub/topics.ts): `j:<job id>`, `u:<owner>`, `*`.
 */
export interface Bus {
  readonly kind: string;
  /**
   * True when other processes publish to this bus too: the hub then learns of
   * their writes only through it, and re-reads the store for jobs it does not follow.
   */
  readonly shared: boolean;
  /**
   * Publish a committed delivery: it reaches this process's handler at once and
   * every other process subscribed to one of its topics.
   */
  publish(delivery: Delivery): void;
  /**
   * Register the function that receives deliveries (one per hub). `sentAt` (ms
   * since epoch) is set on deliveries that came from another process.
   */
  onDelivery(handler: (delivery: Delivery, sentAt?: number) => void): void;
  /**
   * Receive the deliveries of a topic from other processes. Resolves once the bus
   * is listening, or at once when it cannot listen now (it listens again after
   * reconnecting, and then calls the resync handler). Called once per topic until
   * `unsubscribe`.
   */
  subscribe(topicKey: string): Promise<void>;
  /** Stop receiving a topic's deliveries from other processes. */
  unsubscribe(topicKey: string): void;
  /**
   * Register the function called after the bus may have lost deliveries (it
   * reconnected), with the time the loss may have begun, ms since epoch.
   */
  onResync(handler: (lostSince: number) => void): void;
  /** Healthy enough to serve. */
  ping(): Promise<boolean>;
  close(): Promise<void>;
}

/** The topic keys a delivery belongs to: its job, its owner, and everything. */
export function deliveryTopics(delivery: Delivery): [job: string, user: string, all: string] {
  return [`j:${delivery.job}`, `u:${delivery.state.owner}`, '*'];
}
