/**
 * Several hub processes sharing PostgreSQL and Redis (DESIGN.md guarantee 6).
 *
 * In-process: two hubs on one schema racing for one job, and the hub's loss
 * detection driven by a bus that drops chosen deliveries. Then real child
 * processes (`headway start --postgres … --redis …`): clients on one, workers on
 * another, with a process killed, Redis connections killed and PostgreSQL
 * connections terminated mid-stream. Each test has its own schema, key prefix and
 * PostgreSQL application name; the shared servers are never stopped.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { ErrorCode, type EventInput, type JobState, TERMINAL_STATUSES } from '@headway/protocol';
import {
  deleteKeys,
  dropSchema,
  type HubProcess,
  killRedisClients,
  POSTGRES_URL,
  postgresUrlFor,
  REDIS_URL,
  redisClient,
  requireFreshBuild,
  requirePostgres,
  requireRedis,
  spawnHubProcess,
  TEST_API_KEY,
  TEST_JWT_SECRET,
  terminatePostgres,
  uniqueName,
  waitFor,
} from '@headway/test-helpers';
import type { Redis } from 'ioredis';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import WebSocket from 'ws';
import { Auth } from '../src/auth.js';
import { type Bus, deliveryTopics } from '../src/bus/bus.js';
import { MemoryBus } from '../src/bus/memory.js';
import { Delivery } from '../src/delivery.js';
import type { HeadwayError } from '../src/errors.js';
import { Hub } from '../src/hub.js';
import { PostgresStore } from '../src/store/postgres.js';
import type { Store } from '../src/store/store.js';

const postgres = await requirePostgres();
const redis = await requireRedis();
const skip = postgres.skip || redis.skip;
const title = (name: string) => redis.title(postgres.title(name));

// ---------------------------------------------------------------------------
// In-process

/**
 * A bus between hubs of one test process, delivering asynchronously and in
 * order, that drops the deliveries `drop` picks: the deterministic stand-in for
 * a lossy network bus.
 */
class LinkedBus implements Bus {
  readonly kind = 'linked';
  readonly shared = true;
  readonly topics = new Set<string>();
  handler: ((d: Delivery, sentAt?: number) => void) | null = null;
  resyncHandler: ((lostSince: number) => void) | null = null;
  drop: (d: Delivery) => boolean = () => false;

  constructor(private readonly group: LinkedBus[]) {
    group.push(this);
  }
  publish(d: Delivery): void {
    this.handler?.(d);
    const sentAt = Date.now();
    for (const peer of this.group) {
      if (peer === this || !deliveryTopics(d).some((k) => peer.topics.has(k)) || peer.drop(d)) continue;
      // What a network bus carries: the state without the estimator the sender holds beside it.
      const received = new Delivery(d.event, JSON.parse(JSON.stringify(d.state)) as JobState);
      setImmediate(() => peer.handler?.(received, sentAt));
    }
  }
  onDelivery(handler: (d: Delivery, sentAt?: number) => void): void {
    this.handler = handler;
  }
  async subscribe(key: string): Promise<void> {
    this.topics.add(key);
  }
  unsubscribe(key: string): void {
    this.topics.delete(key);
  }
  onResync(handler: (lostSince: number) => void): void {
    this.resyncHandler = handler;
  }
  async ping(): Promise<boolean> {
    return true;
  }
  async close(): Promise<void> {
    this.handler = null;
  }
}

/** A subscriber that records the seqs of one job it is handed. */
function recorder(hub: Hub, job: string) {
  const seqs: number[] = [];
  const subscriber = { deliver: (d: Delivery) => void (d.job === job && seqs.push(d.seq)) };
  return {
    seqs,
    async start(): Promise<number> {
      hub.subscribe({ job }, subscriber);
      const resumed = await hub.resume(job, undefined);
      return resumed!.state.seq;
    },
  };
}

describe.skipIf(skip)(title('hubs sharing one PostgreSQL schema'), () => {
  const schemas: string[] = [];
  const closers: (() => Promise<void>)[] = [];
  afterEach(async () => {
    for (const close of closers.splice(0).reverse()) await close();
    for (const schema of schemas.splice(0)) await dropSchema(schema);
  });

  async function hubs(count: number, bus: (i: number) => Bus, options: { idleCheckMs?: number } = {}) {
    const schema = uniqueName('hw_cluster');
    schemas.push(schema);
    const out: Hub[] = [];
    for (let i = 0; i < count; i++) {
      const store = new PostgresStore({ connectionString: POSTGRES_URL, schema, poolSize: 4 });
      await store.migrate();
      const hub = new Hub({ store, bus: bus(i), idleCheckMs: options.idleCheckMs });
      closers.push(async () => {
        await hub.close();
        await hub.bus.close();
        await store.close();
      });
      out.push(hub);
    }
    return out;
  }

  it('two hubs publishing to one job concurrently: a gapless log, every request applied once', async () => {
    const [a, b] = await hubs(2, () => new MemoryBus());
    await a!.createJob({ id: 'race', owner: 'alice', name: 'race' });
    const perHub = 60;
    const inFlight = 3;
    const acks: { key: string; seq: number; resent: boolean }[] = [];
    const run = async (hub: Hub, name: string) => {
      let next = 0;
      const lane = async () => {
        while (next < perHub) {
          const key = `${name}-${next++}`;
          const events: EventInput[] = [{ kind: 'progress', percent: 1, message: key, key }];
          // The hub retries lost races itself, a bounded number of times; under
          // sustained contention a request may still be answered 503, and the
          // client sends it again with the same key, as the worker SDK does.
          for (let resent = false; ; resent = true) {
            try {
              acks.push({ key, seq: (await hub.publish('race', events)).seq, resent });
              break;
            } catch (err) {
              expect((err as HeadwayError).code).toBe(ErrorCode.STORE_UNAVAILABLE);
            }
          }
        }
      };
      await Promise.all(Array.from({ length: inFlight }, lane));
    };
    await Promise.all([run(a!, 'a'), run(b!, 'b')]);

    expect(acks).toHaveLength(2 * perHub);
    const log = await a!.store.getEvents('race', 0, 1000);
    expect(log.map((e) => e.seq)).toEqual(Array.from({ length: 2 * perHub + 1 }, (_, i) => i + 1));
    const stored = new Map(log.slice(1).map((e) => [(e.data as { message?: string }).message, e.seq]));
    expect(stored.size).toBe(2 * perHub);
    for (const ack of acks) {
      // A first answer names the event's own seq; a resent one the job's seq by then.
      if (ack.resent) expect(ack.seq).toBeGreaterThanOrEqual(stored.get(ack.key)!);
      else expect(ack.seq).toBe(stored.get(ack.key));
    }
    expect((await b!.store.getJob('race'))!.seq).toBe(2 * perHub + 1);
  });

  it('two hubs racing through publishMany (jobs in memory, no keys): lost races applied again, each event once', async () => {
    const [a, b] = await hubs(2, () => new MemoryBus());
    const jobs = ['many-1', 'many-2'];
    for (const id of jobs) await a!.createJob({ id, owner: 'alice', name: id });
    // Both hubs hold the jobs in memory, so their batches take the path without reads.
    for (const hub of [a!, b!])
      for (const id of jobs) await hub.publish(id, [{ kind: 'progress', percent: 0 }]);
    const rounds = 40;
    const answers: { job: string; message: string; seq?: number; code?: string }[] = [];
    const run = async (hub: Hub, name: string) => {
      for (let i = 0; i < rounds; i++) {
        const message = `${name}-${i}`;
        const results = await hub.publishMany(
          jobs.map((job) => ({ job, kind: 'progress', percent: 1, message })),
        );
        for (const r of results) {
          answers.push(
            'error' in r ? { job: r.job, message, code: r.error.code } : { job: r.job, message, seq: r.seq },
          );
        }
      }
    };
    await Promise.all([run(a!, 'a'), run(b!, 'b')]);

    expect(answers).toHaveLength(2 * rounds * jobs.length);
    for (const job of jobs) {
      const log = await a!.store.getEvents(job, 0, 1000);
      expect(log.map((e) => e.seq)).toEqual(Array.from({ length: log.length }, (_, i) => i + 1));
      const reported = log.slice(3);
      const stored = new Map(reported.map((e) => [(e.data as { message?: string }).message, e.seq]));
      // Each reported event once: no message twice, and nothing but the reports.
      const twice = reported.filter((e) => stored.get((e.data as { message?: string }).message) !== e.seq);
      expect(twice.map((e) => [e.seq, e.kind, e.data])).toEqual([]);
      for (const answer of answers.filter((x) => x.job === job)) {
        // An answered event is stored once, at the seq the answer names; a failed one not at all.
        if (answer.seq !== undefined) expect(stored.get(answer.message)).toBe(answer.seq);
        else expect([answer.code, stored.has(answer.message)]).toEqual([ErrorCode.STORE_UNAVAILABLE, false]);
      }
      expect(stored.size).toBe(answers.filter((x) => x.job === job && x.seq !== undefined).length);
    }
  });

  it('backfills a gap from the store, in order, and drops repeated deliveries', async () => {
    const group: LinkedBus[] = [];
    const [writer, reader] = await hubs(2, () => new LinkedBus(group));
    await writer!.createJob({ id: 'gappy', owner: 'alice', name: 'gappy' });
    const watch = recorder(reader!, 'gappy');
    expect(await watch.start()).toBe(1);
    const readerBus = group[1]!;
    readerBus.drop = (d) => d.seq === 3 || d.seq === 4;
    for (let i = 0; i < 6; i++) await writer!.publish('gappy', [{ kind: 'progress', percent: i * 10 }]);
    await waitFor(() => watch.seqs.length === 6, 'the backfill');
    expect(watch.seqs).toEqual([2, 3, 4, 5, 6, 7]);
    // The same delivery again (a bus repeating itself after a reconnect) is dropped.
    const again = (await writer!.store.getEvents('gappy', 6, 1))[0]!;
    readerBus.handler!(new Delivery(again, (await writer!.getJob('gappy'))!));
    expect(watch.seqs).toEqual([2, 3, 4, 5, 6, 7]);
  });

  it('finds a lost last delivery with the idle check, and a lost ending of a scope job with a resync', async () => {
    const group: LinkedBus[] = [];
    const [writer, reader] = await hubs(2, () => new LinkedBus(group), { idleCheckMs: 100 });
    await writer!.createJob({ id: 'quiet', owner: 'alice', name: 'quiet' });
    const watch = recorder(reader!, 'quiet');
    await watch.start();
    group[1]!.drop = (d) => d.kind === 'completed';
    await writer!.publish('quiet', [{ kind: 'progress', percent: 50 }]);
    await writer!.publish('quiet', [{ kind: 'completed' }]);
    await waitFor(() => watch.seqs.length === 2, 'the idle check');
    expect(watch.seqs).toEqual([2, 3]);

    // A dashboard of alice's jobs: a job created and finished while the bus was away.
    const seen: Delivery[] = [];
    reader!.subscribe({ user: 'alice' }, { deliver: (d) => void seen.push(d) });
    await reader!.snapshotJobs({ owner: 'alice', limit: 10 });
    group[1]!.drop = () => true;
    const lostSince = Date.now();
    await writer!.createJob({ id: 'unseen', owner: 'alice', name: 'unseen' });
    await writer!.publish('unseen', [{ kind: 'completed' }]);
    group[1]!.drop = () => false;
    group[1]!.resyncHandler!(lostSince);
    await waitFor(() => seen.some((d) => d.job === 'unseen' && d.kind === 'completed'), 'the resync');
    expect(seen.filter((d) => d.job === 'unseen').map((d) => d.seq)).toEqual([1, 2]);
  });

  /** Runs `during` inside the next call of the store's `method`, once it has read. */
  function duringNextRead(store: Store, method: 'getJob' | 'listJobs', during: () => Promise<void>): void {
    const own = store as unknown as Record<string, (...args: unknown[]) => Promise<unknown>>;
    const read = own[method]!.bind(store);
    own[method] = async (...args) => {
      const result = await read(...args);
      delete own[method];
      await during();
      return result;
    };
  }

  /** Seqs 3 and 4 of `job`, the first lost on `readerBus`: resolves once 4 reached `seqs`. */
  async function loseThirdBringFourth(writer: Hub, readerBus: LinkedBus, job: string, seqs: number[]) {
    readerBus.drop = (d) => d.seq === 3;
    await writer.publish(job, [{ kind: 'progress', percent: 20 }]);
    await writer.publish(job, [{ kind: 'progress', percent: 30 }]);
    await waitFor(() => seqs.includes(4), 'seq 4 from the bus');
  }

  /**
   * Resume `job` on `reader` from `since` while `during` runs inside the resume's
   * store read, after the row was read. Returns what the subscriber ends up with,
   * as a connection's outbox gives it: the resume's events, then the deliveries
   * the resumed state does not cover.
   */
  async function resumeDuring(
    reader: Hub,
    job: string,
    since: number,
    during: (seqs: number[]) => Promise<void>,
  ) {
    const seqs: number[] = [];
    reader.subscribe({ job }, { deliver: (d) => void seqs.push(d.seq) });
    duringNextRead(reader.store, 'getJob', () => during(seqs));
    const resumed = (await reader.resume(job, since))!;
    expect(resumed.recovered).toBe(true);
    return [...resumed.events.map((e) => e.seq), ...seqs.filter((seq) => seq > resumed.state.seq)];
  }

  /** A writer and a reader hub linked as Redis links them, and a job `id` the writer took to seq 2. */
  async function linkedPair(id: string): Promise<{ writer: Hub; reader: Hub; readerBus: LinkedBus }> {
    const group: LinkedBus[] = [];
    const [writer, reader] = await hubs(2, () => new LinkedBus(group));
    await writer!.createJob({ id, owner: 'alice', name: id });
    await writer!.publish(id, [{ kind: 'progress', percent: 10 }]);
    return { writer: writer!, reader: reader!, readerBus: group[1]! };
  }

  it('resumes exactly when the bus replaces a cached job while the store is read', async () => {
    const { writer, reader } = await linkedPair('replaced');
    // The reader caches the job at seq 2, as a subscribe's access check does.
    expect((await reader.getJob('replaced'))!.seq).toBe(2);
    // Committed before the reader listens: only the store has seq 3.
    await writer.publish('replaced', [{ kind: 'progress', percent: 20 }]);
    // While the resume reads the store, seq 4 comes over the bus and the cached
    // entry goes (it has an estimator, the bus's state none): the read must win.
    const got = await resumeDuring(reader, 'replaced', 2, async (seqs) => {
      await writer.publish('replaced', [{ kind: 'progress', percent: 30 }]);
      await waitFor(() => seqs.includes(4), 'seq 4 from the bus');
    });
    expect(got).toEqual([3, 4]);
  });

  it('resumes exactly when the bus lost an event committed after the store read', async () => {
    const { writer, reader, readerBus } = await linkedPair('late');
    // The read sees seq 2; seq 3 is lost (a bus that began listening late), and
    // seq 4 starts the reader's tracking before the read is back.
    const got = await resumeDuring(reader, 'late', 2, (seqs) =>
      loseThirdBringFourth(writer, readerBus, 'late', seqs),
    );
    expect(got).toEqual([3, 4]);
  });

  it('gives a scope subscriber the later state the bus brought while its jobs were listed', async () => {
    const { writer, reader, readerBus } = await linkedPair('listed');
    const seqs: number[] = [];
    reader.subscribe({ user: 'alice' }, { deliver: (d) => void seqs.push(d.seq) });
    // The page holds seq 2; seq 3 is lost, and seq 4 comes before the page is back.
    duringNextRead(reader.store, 'listJobs', () => loseThirdBringFourth(writer, readerBus, 'listed', seqs));
    const page = await reader.snapshotJobs({ owner: 'alice', limit: 10 });
    expect(page.jobs.map((j) => [j.id, j.seq])).toEqual([['listed', 4]]);
    expect(page.jobs[0]!.progress.percent).toBe(30);
  });

  it('retries a write whose cached job another process moved on, and reads the moved-on state', async () => {
    const group: LinkedBus[] = [];
    const [a, b] = await hubs(2, () => new LinkedBus(group));
    await a!.createJob({ id: 'moved', owner: 'alice', name: 'moved' });
    expect((await b!.getJob('moved'))!.seq).toBe(1);
    await a!.publish('moved', [{ kind: 'progress', percent: 10 }]);
    // b has the job cached at seq 1 and follows nothing: it reads the store again.
    expect((await b!.getJob('moved'))!.seq).toBe(2);
    await a!.publish('moved', [{ kind: 'progress', percent: 20 }]);
    expect(await b!.publish('moved', [{ kind: 'progress', percent: 30 }])).toMatchObject({ seq: 4 });
  });
});

// ---------------------------------------------------------------------------
// Child processes

interface Cluster {
  schema: string;
  prefix: string;
  appName: string;
  dataDir: string;
  processes: HubProcess[];
}

const auth = new Auth({ jwtSecret: TEST_JWT_SECRET, apiKeys: [TEST_API_KEY] });
const TERMINAL = new Set<string>(TERMINAL_STATUSES);

/** Follows one job over WebSocket, reconnecting (to the URL `pick` gives) and resuming with `since`. */
class Follower {
  /** Seq of the state the first subscription started from. */
  start = -1;
  readonly seqs: number[] = [];
  terminal = false;
  /** The job's `deleted` event came: the sentinel after which nothing of the job can arrive. */
  deleted = false;
  reconnects = 0;
  /** What went wrong on a connection, a reconnect's included. */
  readonly failures: string[] = [];
  private last = 0;
  private ws: WebSocket | null = null;
  private stopped = false;

  constructor(
    readonly job: string,
    private readonly token: string,
    private readonly pick: () => string,
  ) {}

  open(): Promise<void> {
    return new Promise((resolve, reject) => {
      const ws = new WebSocket(`${this.pick()}?token=${this.token}`);
      this.ws = ws;
      ws.on('error', () => {});
      ws.on('open', () => {
        const since = this.start < 0 ? undefined : this.last;
        ws.send(JSON.stringify({ type: 'subscribe', id: 's', job: this.job, since }));
      });
      ws.on('message', (raw) => {
        const m = JSON.parse(raw.toString()) as {
          type: string;
          job?: string;
          seq?: number;
          kind?: string;
          jobs?: JobState[];
          events?: { seq: number; kind: string }[];
          recovered?: boolean;
        };
        if (m.type === 'subscribed') {
          if (this.start < 0) {
            this.start = m.jobs![0]!.seq;
            this.last = this.start;
          } else if (!m.recovered) {
            // A reconnect's promise is not awaited: the failure is kept for `expectComplete`.
            this.failures.push(`resume of ${this.job} from ${this.last} was not recovered`);
          }
          for (const e of m.events ?? []) this.note(e.seq, e.kind);
          resolve();
        } else if (m.type === 'event' && m.job === this.job) {
          this.note(m.seq!, m.kind!);
        } else if (m.type === 'error') {
          this.failures.push(`error on ${this.job}: ${raw.toString()}`);
          reject(new Error(this.failures.at(-1)));
        }
      });
      ws.on('close', (code) => {
        if (this.stopped || this.ws !== ws) return;
        if (code >= 4200 && code < 4300) {
          // "Do not reconnect": a client stops here.
          this.failures.push(`${this.job} closed with ${code}`);
          this.stopped = true;
          reject(new Error(this.failures.at(-1)));
          return;
        }
        this.reconnects++;
        setTimeout(() => this.open().catch(() => {}), 50);
      });
    });
  }

  private note(seq: number, kind: string): void {
    if (kind === 'deleted') {
      this.deleted = true;
      return;
    }
    this.seqs.push(seq);
    this.last = Math.max(this.last, seq);
    if (TERMINAL.has(kind)) this.terminal = true;
  }

  close(): void {
    this.stopped = true;
    this.ws?.terminate();
  }

  /** Every seq after the start exactly once, in order, ending with the job's final seq (and nothing after it). */
  expectComplete(finalSeq: number): void {
    expect(this.failures).toEqual([]);
    expect(this.deleted).toBe(true);
    expect(this.seqs).toEqual(Array.from({ length: finalSeq - this.start }, (_, i) => this.start + 1 + i));
    expect(this.terminal).toBe(true);
  }
}

/** POST JSON with the API key; retries 503s and refused connections (a worker SDK would). */
async function post(
  base: () => string,
  path: string,
  body: unknown,
  stats = { unavailable: 0, retryAfter: 0 },
): Promise<{ seq?: number }> {
  for (let attempt = 1; ; attempt++) {
    let res: Response;
    try {
      res = await fetch(`${base()}${path}`, {
        method: 'POST',
        headers: { authorization: `Bearer ${TEST_API_KEY}`, 'content-type': 'application/json' },
        body: JSON.stringify(body),
      });
    } catch (err) {
      if (attempt > 200) throw err;
      await sleep(50);
      continue;
    }
    const text = await res.text();
    if (res.status === 503 && attempt <= 200) {
      stats.unavailable++;
      if (Number(res.headers.get('retry-after')) > 0) stats.retryAfter++;
      await sleep(50);
      continue;
    }
    if (res.status >= 300) throw new Error(`POST ${path}: ${res.status} ${text}`);
    return JSON.parse(text) as { seq?: number };
  }
}

/** Reports `count` progress events (each with an idempotency key) and then completes the job. */
async function work(
  base: () => string,
  job: string,
  count: number,
  pauseMs: number,
  stats?: { unavailable: number; retryAfter: number },
) {
  let seq = 0;
  for (let i = 1; i <= count; i++) {
    const events = [
      { kind: 'progress', percent: Math.round((i / count) * 99), message: `${job}-${i}`, key: `${job}-${i}` },
    ];
    seq = (await post(base, `/v1/jobs/${job}/events`, { events }, stats)).seq!;
    if (pauseMs > 0) await sleep(pauseMs);
  }
  seq = (
    await post(base, `/v1/jobs/${job}/events`, { events: [{ kind: 'completed', key: `${job}-done` }] }, stats)
  ).seq!;
  return seq;
}

// Three `headway` processes start in each test: seconds on a busy machine, before any event.
describe.skipIf(skip)(title('hub processes'), { timeout: 60_000 }, () => {
  let admin: Redis;
  let cluster: Cluster | null = null;
  const followers: Follower[] = [];

  beforeAll(() => {
    // The processes run the compiled command, built before the run.
    requireFreshBuild();
    admin = redisClient();
  });

  afterAll(() => {
    admin?.disconnect();
  });

  afterEach(async (ctx) => {
    for (const f of followers.splice(0)) f.close();
    if (!cluster) return;
    const c = cluster;
    cluster = null;
    if (ctx.task.result?.state === 'fail') {
      // A process that died unexpectedly is the likeliest cause: show what it said.
      for (const p of c.processes) {
        if (p.child.exitCode !== null)
          console.error(`hub ${p.url} exited ${p.child.exitCode}:\n${p.output().slice(-4000)}`);
      }
    }
    await Promise.all(
      c.processes.map(
        (p) =>
          new Promise<void>((resolve) => {
            if (p.child.exitCode !== null || p.child.signalCode !== null) return resolve();
            p.child.once('exit', () => resolve());
            p.child.kill('SIGKILL');
          }),
      ),
    );
    await dropSchema(c.schema);
    await deleteKeys(admin, c.prefix);
    rmSync(c.dataDir, { recursive: true, force: true });
  }, 30_000);

  function newCluster(): Cluster {
    const name = uniqueName('hwc');
    cluster = {
      schema: name,
      prefix: `${name}:`,
      appName: name,
      dataDir: mkdtempSync(join(tmpdir(), 'headway-cluster-')),
      processes: [],
    };
    return cluster;
  }

  function spawnHub(c: Cluster, extra: readonly string[]): Promise<HubProcess> {
    return spawnHubProcess(
      [
        ...extra,
        '--data-dir',
        c.dataDir,
        '--postgres',
        postgresUrlFor(c.appName),
        '--postgres-schema',
        c.schema,
        '--redis',
        REDIS_URL,
        '--redis-prefix',
        c.prefix,
        '--idle-check-ms',
        '300',
      ],
      (p) => c.processes.push(p),
    );
  }

  async function start(count: number, extra: readonly string[] = []): Promise<HubProcess[]> {
    const c = newCluster();
    // The first process creates the schema; the others find it ready.
    const first = await spawnHub(c, extra);
    return [first, ...(await Promise.all(Array.from({ length: count - 1 }, () => spawnHub(c, extra))))];
  }

  async function follow(jobs: string[], pick: () => string): Promise<Follower[]> {
    const token = (await auth.mint({ user: 'alice', ttl: 600 })).token;
    const list = jobs.map((job) => new Follower(job, token, pick));
    followers.push(...list);
    await Promise.all(list.map((f) => f.open()));
    return list;
  }

  /**
   * Delete the jobs through `base` and wait until every watcher has their final
   * `deleted` event: the sentinel, after which no late or repeated event of theirs
   * can reach the watchers' sockets unseen.
   */
  async function deleteJobs(base: string, jobs: string[], watchers: Follower[]): Promise<void> {
    for (const job of jobs) {
      const res = await fetch(`${base}/v1/jobs/${job}`, {
        method: 'DELETE',
        headers: { authorization: `Bearer ${TEST_API_KEY}` },
      });
      expect(res.status).toBe(204);
    }
    await waitFor(() => watchers.every((w) => w.deleted), 'every deleted event', 15_000);
  }

  async function createJobs(base: string, n: number, tag: string): Promise<string[]> {
    const ids = Array.from({ length: n }, (_, i) => `${tag}-${i}`);
    for (const id of ids) await post(() => base, '/v1/jobs', { id, owner: 'alice', name: id });
    return ids;
  }

  it('three processes: clients on one, workers on another, every event delivered once and in order', async () => {
    const [a, b, c] = await start(3);
    const jobs = await createJobs(a!.url, 4, 'fan');
    const watchers = await follow(jobs, () => b!.wsUrl);
    // A dashboard of alice's jobs on the third process.
    const dashboardToken = (await auth.mint({ user: 'alice', ttl: 600 })).token;
    const dashboard = await new Promise<{
      seqs: Map<string, number[]>;
      deleted: Set<string>;
      ws: WebSocket;
    }>((resolve, reject) => {
      const ws = new WebSocket(`${a!.wsUrl}?token=${dashboardToken}`);
      const seqs = new Map<string, number[]>();
      const deleted = new Set<string>();
      ws.on('error', reject);
      ws.on('open', () => ws.send(JSON.stringify({ type: 'subscribe', id: 'd', scope: 'user' })));
      ws.on('message', (raw) => {
        const m = JSON.parse(raw.toString()) as {
          type: string;
          job?: string;
          seq?: number;
          kind?: string;
          jobs?: JobState[];
        };
        if (m.type === 'subscribed') {
          for (const s of m.jobs!) seqs.set(s.id, []);
          resolve({ seqs, deleted, ws });
        } else if (m.type === 'event' && m.kind === 'deleted') deleted.add(m.job!);
        else if (m.type === 'event') seqs.get(m.job!)?.push(m.seq!);
      });
    });
    try {
      const finals = await Promise.all(jobs.map((job) => work(() => c!.url, job, 40, 2)));
      await waitFor(() => watchers.every((w) => w.terminal), 'every terminal event', 15_000);
      await deleteJobs(c!.url, jobs, watchers);
      jobs.forEach((_, i) => {
        watchers[i]!.expectComplete(finals[i]!);
      });
      await waitFor(() => jobs.every((job) => dashboard.deleted.has(job)), 'the dashboard', 10_000);
      jobs.forEach((job, i) => {
        expect(dashboard.seqs.get(job)).toEqual(Array.from({ length: finals[i]! - 1 }, (_, k) => k + 2));
      });
    } finally {
      dashboard.ws.terminate();
    }
  });

  it("a process killed with SIGKILL: its clients resume exactly on another, at their user's limit too", async () => {
    // Alice's three watchers are her limit: the dead process's counts must not keep them out.
    const [a, b, c] = await start(3, ['--connections-per-user', '3']);
    const jobs = await createJobs(a!.url, 3, 'kill');
    let target = b!;
    const watchers = await follow(jobs, () => target.wsUrl);
    const working = Promise.all(jobs.map((job) => work(() => c!.url, job, 60, 5)));
    await waitFor(() => watchers.every((w) => w.seqs.length >= 10), 'the stream to start', 10_000);
    target = a!;
    b!.child.kill('SIGKILL');
    const finals = await working;
    await waitFor(() => watchers.every((w) => w.terminal), 'every terminal event', 15_000);
    await deleteJobs(c!.url, jobs, watchers);
    jobs.forEach((_, i) => {
      watchers[i]!.expectComplete(finals[i]!);
      expect(watchers[i]!.reconnects).toBeGreaterThanOrEqual(1);
    });
  });

  it('Redis connections killed mid-stream: gaps backfilled, nothing twice', async () => {
    const [a, b, c] = await start(3);
    const jobs = await createJobs(a!.url, 3, 'redis');
    const watchers = await follow(jobs, () => b!.wsUrl);
    const working = Promise.all(jobs.map((job) => work(() => c!.url, job, 80, 5)));
    await waitFor(() => watchers.every((w) => w.seqs.length >= 10), 'the stream to start', 10_000);
    const name = `headway@${cluster!.prefix}`;
    expect(await killRedisClients(admin, name, 'pubsub')).toBeGreaterThanOrEqual(1);
    await sleep(100);
    expect(await killRedisClients(admin, name, 'normal')).toBeGreaterThanOrEqual(3);
    await sleep(100);
    await killRedisClients(admin, name);
    const finals = await working;
    await waitFor(() => watchers.every((w) => w.terminal), 'every terminal event', 15_000);
    await deleteJobs(c!.url, jobs, watchers);
    jobs.forEach((_, i) => {
      watchers[i]!.expectComplete(finals[i]!);
    });
  });

  it('PostgreSQL connections terminated: 503 with Retry-After meanwhile, every keyed event stored once', async () => {
    const [a, b, c] = await start(3);
    const jobs = await createJobs(a!.url, 3, 'pg');
    const watchers = await follow(jobs, () => b!.wsUrl);
    const stats = { unavailable: 0, retryAfter: 0 };
    const working = Promise.all(jobs.map((job) => work(() => c!.url, job, 80, 5, stats)));
    await waitFor(() => watchers.every((w) => w.seqs.length >= 10), 'the stream to start', 10_000);
    const outage = Date.now() + 1500;
    let terminated = 0;
    while (Date.now() < outage) {
      terminated += await terminatePostgres(cluster!.appName);
      await sleep(10);
    }
    expect(terminated).toBeGreaterThan(0);
    const finals = await working;
    expect(stats.unavailable).toBeGreaterThan(0);
    expect(stats.retryAfter).toBe(stats.unavailable);
    await waitFor(() => watchers.every((w) => w.terminal), 'every terminal event', 15_000);
    for (const [i, job] of jobs.entries()) {
      const res = await fetch(`${a!.url}/v1/jobs/${job}/events?since=0&limit=1000`, {
        headers: { authorization: `Bearer ${TEST_API_KEY}` },
      });
      const { events } = (await res.json()) as {
        events: { seq: number; kind: string; data: { message?: string } }[];
      };
      expect(events.map((e) => e.seq)).toEqual(Array.from({ length: finals[i]! }, (_, k) => k + 1));
      const messages = events.filter((e) => e.kind === 'progress').map((e) => e.data.message);
      expect(messages).toEqual(Array.from({ length: 80 }, (_, k) => `${job}-${k + 1}`));
      expect(events.filter((e) => e.kind === 'completed')).toHaveLength(1);
    }
    await deleteJobs(c!.url, jobs, watchers);
    jobs.forEach((_, i) => {
      watchers[i]!.expectComplete(finals[i]!);
    });
  });
});
