import type { Delivery } from '../delivery.js';
import type { Bus } from './bus.js';

/** The in-process bus: a delivery reaches this process's subscribers synchronously. */
export class MemoryBus implements Bus {
  readonly kind = 'memory';
  readonly shared = false;
  private handler: ((delivery: Delivery) => void) | null = null;

  publish(delivery: Delivery): void {
    this.handler?.(delivery);
  }

  onDelivery(handler: (delivery: Delivery) => void): void {
    this.handler = handler;
  }

  // Every delivery is local, so every topic is always heard and nothing is ever lost.
  async subscribe(_topicKey: string): Promise<void> {}

  unsubscribe(_topicKey: string): void {}

  onResync(_handler: (lostSince: number) => void): void {}

  async ping(): Promise<boolean> {
    return true;
  }

  async close(): Promise<void> {
    this.handler = null;
  }
}
