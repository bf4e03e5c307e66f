import type { Delivery } from '../delivery.js';
import type { Bus } from './bus.js';

/** The in-process bus: a delivery reaches this process's subscribers synchronously. */
export class MemoryBus implements Bus {
  readonly kind = 'memory';
  private handler: ((delivery: Delivery) => void) | null = null;

  publish(delivery: Delivery): void {
    this.handler?.(delivery);
  }

  onDelivery(handler: (delivery: Delivery) => void): void {
    this.handler = handler;
  }

  async ping(): Promise<boolean> {
    return true;
  }

  async close(): Promise<void> {
    this.handler = null;
  }
}
