import { randomBytes } from 'node:crypto';
import type { JobEvent, JobState } from '@headway/protocol';
import { Redis } from 'ioredis';
import type { Logger } from 'pino';
import { Delivery } from '../delivery.js';
import type { Metrics } from '../metrics.js';
import { type Bus, deliveryTopics } from './bus.js';

export interface RedisBusOptions {
  /** `redis://[[user]:password@]host[:port][/db]` (or `rediss://` for TLS), as understood by ioredis. */
  url: string;
  /**
   * Prepended to every channel and key, so that several deployments (or tests)
   * share one Redis without hearing each other.
   * @defaultValue `'headway:'`
   */
  prefix?: string;
  /**
   * Name of the connections in `CLIENT LIST` (`<name>:pub`, `<name>:sub`).
   * @defaultValue `'headway'`
   */
  connectionName?: string;
  /**
   * Deliveries kept to re-publish after the connection comes back; older ones
   * are dropped past it (the other processes then backfill them from the store).
   * @defaultValue `10000`
   */
  maxUnsent?: number;
  logger?: Logger;
  metrics?: Metrics;
}

const DEFAULTS = {
  prefix: 'headway:',
  connectionName: 'headway',
  maxUnsent: 10_000,
} as const;

/** Channels per SUBSCRIBE command when re-subscribing after a reconnect. */
const SUBSCRIBE_CHUNK = 1_000;
/** Longest pause between reconnection attempts, ms. */
const MAX_RECONNECT_DELAY_MS = 2_000; // 2 seconds
/** Time `close()` gives pending publishes before it drops the connections, ms. */
const QUIT_TIMEOUT_MS = 1_000; // 1 second

/**
 * One PUBLISH per channel inside Redis: the payload crosses the network once,
 * whatever the number of channels.
 */
const PUBLISH_SCRIPT = `for i = 1, #KEYS do redis.call('PUBLISH', KEYS[i], ARGV[1]) end
return #KEYS`;

type ScriptedRedis = Redis & {
  headwayPublish(job: string, user: string, all: string, payload: Buffer): Promise<number>;
};

/**
 * The bus of several hub processes: Redis pub/sub.
 *
 * Channels are `<prefix>j:<job id>`, `<prefix>u:<owner>` and `<prefix>*` — the
 * hub's topic keys under the prefix. A process subscribes to the channel of a
 * topic while it has local subscribers to it, and to nothing else, so it
 * receives only what its clients need. Every delivery is published to its three
 * channels by one script call, with one payload: `<origin> <sentAt> <event>`,
 * where `<event>` is the native protocol's `event` message, the bytes that local
 * clients are sent. A receiving process parses it once and reuses the bytes for
 * its own clients, so an event is serialized once in the whole cluster. A process
 * subscribed to two of a delivery's channels (a job and its owner) receives it
 * twice; the hub drops the second copy by seq.
 *
 * The publishing process dispatches its own deliveries at once, without the
 * round trip, and ignores them when they come back.
 *
 * Pub/sub loses what is published while a connection is down. Publishes that
 * fail are kept (bounded) and published again on reconnect; after the subscriber
 * connection comes back the bus subscribes again and calls the resync handler,
 * and the hub reads what was missed from the store.
 */
export class RedisBus implements Bus {
  readonly kind = 'redis';
  readonly shared = true;
  readonly prefix: string;
  /** Identifies this process's messages, so that it skips them when they come back. */
  readonly origin = randomBytes(6).toString('hex');
  /** The connection for commands (publishing, and the shared connection counts). */
  readonly client: Redis;
  private readonly sub: Redis;
  private readonly topics = new Set<string>();
  private readonly unsent: { channels: [string, string, string]; payload: Buffer }[] = [];
  private readonly maxUnsent: number;
  private readonly logger: Logger | undefined;
  private readonly metrics: Metrics | undefined;
  private handler: ((delivery: Delivery, sentAt?: number) => void) | null = null;
  private resyncHandler: ((lostSince: number) => void) | null = null;
  /** Since when the subscriber connection may have missed messages; null while nothing can have been missed. */
  private lostSince: number | null = null;
  /** Settles when the first connection attempt is over (subscribed, or failed). */
  private readonly firstAttempt: Promise<void>;
  private endFirstAttempt: () => void = () => {};
  private closed = false;

  constructor(options: RedisBusOptions) {
    if (typeof options.url !== 'string' || options.url === '') {
      throw new TypeError('RedisBus: "url" must be a non-empty string');
    }
    this.prefix = options.prefix ?? DEFAULTS.prefix;
    this.maxUnsent = options.maxUnsent ?? DEFAULTS.maxUnsent;
    if (!Number.isSafeInteger(this.maxUnsent) || this.maxUnsent < 0) {
      throw new TypeError('RedisBus: "maxUnsent" must be a non-negative integer');
    }
    this.logger = options.logger;
    this.metrics = options.metrics;
    this.firstAttempt = new Promise((resolve) => {
      this.endFirstAttempt = resolve;
    });
    const name = options.connectionName ?? DEFAULTS.connectionName;
    if (!/^[!-~]+$/.test(name))
      throw new TypeError('RedisBus: "connectionName" must be printable, without spaces');
    const retryStrategy = (attempt: number) => Math.min(attempt * 100, MAX_RECONNECT_DELAY_MS);

    // Nothing waits in an unbounded queue while Redis is away: commands fail at
    // once, and the failed publishes go to the bounded `unsent` list instead.
    this.client = new Redis(options.url, {
      connectionName: `${name}:pub`,
      enableOfflineQueue: false,
      maxRetriesPerRequest: 0,
      enableAutoPipelining: true,
      retryStrategy,
    });
    this.client.defineCommand('headwayPublish', { numberOfKeys: 3, lua: PUBLISH_SCRIPT });
    this.client.on('ready', () => this.publishUnsent());
    this.client.on('error', (err) => this.logger?.debug({ err }, 'redis command connection error'));

    // Channels are subscribed again by `resubscribe`, which then knows when the
    // subscriptions are back and the resync can begin.
    this.sub = new Redis(options.url, {
      connectionName: `${name}:sub`,
      autoResubscribe: false,
      enableOfflineQueue: false,
      maxRetriesPerRequest: 0,
      retryStrategy,
    });
    this.sub.on('ready', () => {
      void this.resubscribe();
    });
    this.sub.on('close', () => {
      this.endFirstAttempt();
      if (this.lostSince === null && !this.closed) {
        this.lostSince = Date.now();
        this.logger?.warn('lost the Redis subscriber connection; reconnecting');
      }
    });
    this.sub.on('error', (err) => this.logger?.debug({ err }, 'redis subscriber connection error'));
    this.sub.on('messageBuffer', (_channel: Buffer, message: Buffer) => this.receive(message));
  }

  publish(delivery: Delivery): void {
    this.handler?.(delivery);
    if (this.closed) return;
    const payload = Buffer.concat([Buffer.from(`${this.origin} ${Date.now()} `), delivery.native]);
    const [job, user, all] = deliveryTopics(delivery);
    this.send([this.prefix + job, this.prefix + user, this.prefix + all], payload);
  }

  onDelivery(handler: (delivery: Delivery, sentAt?: number) => void): void {
    this.handler = handler;
  }

  onResync(handler: (lostSince: number) => void): void {
    this.resyncHandler = handler;
  }

  async subscribe(topicKey: string): Promise<void> {
    this.topics.add(topicKey);
    // Right after start-up the first connection is usually a moment away.
    await this.firstAttempt;
    // Not connected: `resubscribe` subscribes it on reconnect, then resyncs.
    if (this.closed || this.sub.status !== 'ready') {
      this.lostSince ??= Date.now();
      return;
    }
    try {
      await this.sub.subscribe(this.prefix + topicKey);
    } catch {
      // The connection broke meanwhile: the same.
    }
  }

  unsubscribe(topicKey: string): void {
    if (!this.topics.delete(topicKey)) return;
    if (this.closed || this.sub.status !== 'ready') return;
    this.sub.unsubscribe(this.prefix + topicKey).catch(() => {});
  }

  /** Channels this process listens to (topic keys, without the prefix). */
  get subscriptions(): ReadonlySet<string> {
    return this.topics;
  }

  async ping(): Promise<boolean> {
    if (this.closed || this.sub.status !== 'ready' || this.client.status !== 'ready') return false;
    try {
      return (await this.client.ping()) === 'PONG';
    } catch {
      return false;
    }
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    this.handler = null;
    this.resyncHandler = null;
    this.endFirstAttempt();
    await Promise.all([quit(this.client), quit(this.sub)]);
  }

  private send(channels: [string, string, string], payload: Buffer): void {
    (this.client as ScriptedRedis).headwayPublish(...channels, payload).catch(() => {
      this.metrics?.busPublishErrors.inc();
      if (this.closed || this.maxUnsent === 0) return;
      if (this.unsent.length >= this.maxUnsent) this.unsent.shift();
      this.unsent.push({ channels, payload });
    });
  }

  private publishUnsent(): void {
    if (this.unsent.length === 0) return;
    this.logger?.info({ deliveries: this.unsent.length }, 'Redis is back; publishing what could not be sent');
    for (const { channels, payload } of this.unsent.splice(0)) this.send(channels, payload);
  }

  private async resubscribe(): Promise<void> {
    const keys = [...this.topics];
    try {
      for (let i = 0; i < keys.length; i += SUBSCRIBE_CHUNK) {
        // Topics left during the previous chunk's round trip are not subscribed again.
        const chunk = keys.slice(i, i + SUBSCRIBE_CHUNK).filter((key) => this.topics.has(key));
        if (chunk.length > 0) await this.sub.subscribe(...chunk.map((key) => this.prefix + key));
      }
    } catch {
      return; // Lost again: the next 'ready' starts over.
    }
    this.endFirstAttempt();
    const lostSince = this.lostSince;
    this.lostSince = null;
    // Without topics nothing was followed, and so nothing can have been missed.
    if (lostSince === null || this.closed || keys.length === 0) return;
    this.logger?.info({ channels: keys.length }, 'Redis subscriptions restored; resyncing');
    this.resyncHandler?.(lostSince);
  }

  private receive(message: Buffer): void {
    const a = message.indexOf(0x20);
    const b = a < 0 ? -1 : message.indexOf(0x20, a + 1);
    if (b < 0 || this.handler === null) return;
    if (message.toString('latin1', 0, a) === this.origin) return;
    const sentAt = Number(message.toString('latin1', a + 1, b));
    let delivery: Delivery;
    try {
      const text = message.toString('utf8', b + 1);
      const m = JSON.parse(text) as JobEvent & { type: string; state: JobState };
      delivery = new Delivery(
        { job: m.job, seq: m.seq, kind: m.kind, data: m.data, at: m.at } as JobEvent,
        m.state,
      );
      // The publisher's bytes are this process's `event` message too.
      delivery.encode('native', () => text);
    } catch (err) {
      this.logger?.warn({ err }, 'ignored a malformed message on the Redis bus');
      return;
    }
    this.handler(delivery, Number.isFinite(sentAt) ? sentAt : undefined);
  }
}

async function quit(redis: Redis): Promise<void> {
  let timer: NodeJS.Timeout | undefined;
  try {
    await Promise.race([
      redis.quit().catch(() => {}),
      new Promise((resolve) => {
        timer = setTimeout(resolve, QUIT_TIMEOUT_MS);
      }),
    ]);
  } finally {
    clearTimeout(timer);
    redis.disconnect();
  }
}
