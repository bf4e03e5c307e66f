import type { Delivery } from '../delivery.js';

/**
 * Carries committed deliveries to every hub process that has subscribers for them.
 * The memory bus serves one process; a networked bus serves many.
 *
 * What the contract leaves out: ordering across jobs, and delivery guarantees. A
 * bus may lose messages; subscribers detect a seq gap and the hub backfills from
 * the store, which is the source of truth.
 */
export interface Bus {
  readonly kind: string;
  /** Publish a committed delivery. */
  publish(delivery: Delivery): void;
  /** Register the function that receives deliveries from the bus (one per hub). */
  onDelivery(handler: (delivery: Delivery) => void): void;
  /** Healthy enough to serve. */
  ping(): Promise<boolean>;
  close(): Promise<void>;
}
