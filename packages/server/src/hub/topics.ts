import type { Bus } from '../bus/bus.js';
import type { Delivery } from '../delivery.js';

/** Receives the deliveries of the topics it subscribed to. */
export interface Subscriber {
  deliver(delivery: Delivery): void;
}

/** What a subscriber listens to: one job, all jobs of one user, or everything. */
export type Topic = { job: string } | { user: string } | { all: true };

/** The bus's name for a topic: `j:<job id>`, `u:<owner>` or `*`. */
export function topicKey(topic: Topic): string {
  if ('job' in topic) return `j:${topic.job}`;
  if ('user' in topic) return `u:${topic.user}`;
  return '*';
}

/** Longest wait for the bus to confirm a new topic before a read goes ahead anyway, ms. */
const BUS_SUBSCRIBE_TIMEOUT_MS = 2_000; // 2 seconds

/** What the registry needs of the hub: only the bus, to listen to the topics it holds. */
export type TopicsContext = Pick<Bus, 'shared' | 'subscribe' | 'unsubscribe'>;

/**
 * The subscription registry: which local subscribers listen to which topic, and
 * the bus listening to every topic that has one.
 */
export class Topics {
  private readonly subscribers = new Map<string, Set<Subscriber>>();
  /** Bus subscriptions of new topics not confirmed yet. */
  private readonly listening = new Set<Promise<void>>();

  constructor(private readonly bus: TopicsContext) {}

  add(topic: Topic, subscriber: Subscriber): void {
    const key = topicKey(topic);
    let set = this.subscribers.get(key);
    if (!set) {
      this.subscribers.set(key, (set = new Set()));
      this.listen(key);
    }
    set.add(subscriber);
  }

  /** Remove a subscriber; true when it was the topic's last one (the bus stops listening). */
  remove(topic: Topic, subscriber: Subscriber): boolean {
    const key = topicKey(topic);
    const set = this.subscribers.get(key);
    if (!set) return false;
    set.delete(subscriber);
    if (set.size > 0) return false;
    this.subscribers.delete(key);
    this.bus.unsubscribe(key);
    return true;
  }

  /** Ask the bus for a new topic; reads that must not miss its deliveries wait for `busReady`. */
  private listen(key: string): void {
    if (!this.bus.shared) {
      void this.bus.subscribe(key);
      return;
    }
    let timer: NodeJS.Timeout | undefined;
    const ready: Promise<void> = Promise.race([
      this.bus.subscribe(key).catch(() => {}),
      // A bus that stalls must not stall subscribers: a reconnect resyncs anyway.
      new Promise<void>((resolve) => {
        timer = setTimeout(resolve, BUS_SUBSCRIBE_TIMEOUT_MS);
      }),
    ]).finally(() => {
      clearTimeout(timer);
      this.listening.delete(ready);
    });
    this.listening.add(ready);
  }

  /** Resolves once the bus listens to every topic added so far (or gave up waiting). */
  async busReady(): Promise<void> {
    if (this.listening.size > 0) await Promise.all(this.listening);
  }

  /**
   * Hand a delivery to every subscriber of its job, its owner and `all`, once each
   * even when several of its topics match. Returns how many of those topics have subscribers.
   */
  deliver(d: Delivery): number {
    const byJob = this.subscribers.get(`j:${d.job}`);
    const byUser = this.subscribers.get(`u:${d.state.owner}`);
    const byAll = this.subscribers.get('*');
    const sources = (byJob ? 1 : 0) + (byUser ? 1 : 0) + (byAll ? 1 : 0);
    if (sources === 1) {
      for (const s of (byJob ?? byUser ?? byAll)!) s.deliver(d);
    } else if (sources > 1) {
      const seen = new Set<Subscriber>();
      for (const set of [byJob, byUser, byAll]) {
        if (!set) continue;
        for (const s of set) {
          if (seen.has(s)) continue;
          seen.add(s);
          s.deliver(d);
        }
      }
    }
    return sources;
  }

  /** Whether a local subscriber watches the job, through its own topic, its owner's or `all`. */
  covers(id: string, owner: string): boolean {
    return this.subscribers.has(`j:${id}`) || this.subscribers.has(`u:${owner}`) || this.subscribers.has('*');
  }

  /** Whether the job's own topic has a subscriber. */
  watchesJob(id: string): boolean {
    return this.subscribers.has(`j:${id}`);
  }

  /** The scopes subscribed to: every job (`all`), or the owners of user topics. */
  scopes(): { all: true } | { owners: string[] } {
    if (this.subscribers.has('*')) return { all: true };
    const owners: string[] = [];
    for (const key of this.subscribers.keys()) if (key.startsWith('u:')) owners.push(key.slice(2));
    return { owners };
  }

  /** Number of distinct topics with at least one subscriber. */
  get size(): number {
    return this.subscribers.size;
  }
}
