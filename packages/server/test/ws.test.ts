import { createServer as createHttpServer, type Server } from 'node:http';
import type { AddressInfo, Socket } from 'node:net';
import { setTimeout as sleep } from 'node:timers/promises';
import { CloseCode, ErrorCode, type EventMessage, type JobState, PROTOCOL_VERSION } from '@headway/protocol';
import {
  connect,
  receivedBefore,
  startHub,
  type TestClient,
  type TestHub,
  waitFor,
} from '@headway/test-helpers';
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import type { CreateServerOptions } from '../src/server.js';
import { WsTransport } from '../src/transports/ws.js';

const hubs: TestHub[] = [];
const clients: TestClient[] = [];
const cleanups: (() => Promise<void>)[] = [];
let n = 0;
const uid = (prefix = 'job') => `${prefix}-${process.pid}-${++n}`;

afterEach(async () => {
  vi.useRealTimers();
  await Promise.all(clients.splice(0).map((c) => c.close()));
  for (const cleanup of cleanups.splice(0).reverse()) await cleanup();
  await Promise.all(hubs.splice(0).map((h) => h.close()));
});

async function hubWith(options: CreateServerOptions = {}): Promise<TestHub> {
  const hub = await startHub(options);
  hubs.push(hub);
  return hub;
}

/** The state mode the subscribe messages of the tests ask for (`describe.each` sets it). */
let stateMode: 'full' | 'delta' = 'full';
const stateModes = ['full', 'delta'] as const;

async function open(url: string, options?: Parameters<typeof connect>[1]): Promise<TestClient> {
  const client = await connect(url, options);
  const send = client.send.bind(client);
  client.send = (message) => {
    const m = message as { type?: string };
    send(m.type === 'subscribe' && stateMode === 'delta' ? { ...m, state: 'delta' } : m);
  };
  clients.push(client);
  return client;
}

/** The state an event carries: whole, or the fields of its patch. */
function stateOf(m: unknown): Partial<JobState> {
  const e = m as { state?: JobState; patch?: Partial<JobState> };
  return e.state ?? e.patch!;
}

/** Fold a connection's events of a job onto its first state, as a delta client does. */
function folded(first: JobState, events: readonly unknown[]): Record<string, unknown> {
  let state: Record<string, unknown> = { ...first };
  for (const e of events) state = { ...state, ...stateOf(e) };
  return state;
}

/** A connection authenticated through the query string, past its `welcome`. */
async function login(hub: TestHub, credential: string): Promise<TestClient> {
  const client = await open(`${hub.wsUrl}?token=${encodeURIComponent(credential)}`);
  await client.next('welcome');
  return client;
}

async function createJob(hub: TestHub, owner = 'alice', id = uid()): Promise<string> {
  await hub.server.hub.createJob({ id, owner, name: id });
  return id;
}

/** Publish `count` progress events; resolves with the job's seq after them. */
async function progress(hub: TestHub, job: string, count: number, message?: string): Promise<number> {
  let seq = 0;
  for (let i = 0; i < count; i++) {
    const r = await hub.server.hub.publish(job, [{ kind: 'progress', percent: (i % 99) + 1, message }]);
    seq = r.seq;
  }
  return seq;
}

function eventsOf(client: TestClient, job: string): EventMessage[] {
  return client.received.filter((m): m is EventMessage => m.type === 'event' && m.job === job);
}

function rawSocket(client: TestClient): Socket {
  return (client.ws as unknown as { _socket: Socket })._socket;
}

describe('ws transport: authentication', () => {
  it('welcomes a client that gives its token in the query', async () => {
    const hub = await hubWith();
    const client = await open(`${hub.wsUrl}?token=${await hub.token('alice')}`);
    const welcome = await client.next('welcome');
    expect(welcome.version).toBe(PROTOCOL_VERSION);
    expect(welcome.user).toBe('alice');
    expect(welcome.heartbeatMs).toBe(hub.server.options.limits.heartbeatMs);
    expect(welcome.limits).toEqual({
      maxMessageBytes: hub.server.options.limits.maxMessageBytes,
      maxSubscriptions: hub.server.options.limits.maxSubscriptions,
      messagesPerSecond: hub.server.options.limits.messagesPerSecond,
      replayLimit: hub.server.options.limits.replayLimit,
    });
  });

  it('answers requests sent right after the socket opens once the credential is verified, after the welcome', async () => {
    const hub = await hubWith();
    const job = await createJob(hub);
    const token = await hub.token('alice');
    // The token in the query, and a subscribe without waiting for the welcome.
    const inQuery = await open(`${hub.wsUrl}?token=${token}`);
    inQuery.send({ type: 'subscribe', id: 's1', job });
    // An auth message, and a subscribe right behind it.
    const byMessage = await open(hub.wsUrl);
    byMessage.send({ type: 'auth', token });
    byMessage.send({ type: 'subscribe', id: 's1', job });
    for (const client of [inQuery, byMessage]) {
      const subscribed = await client.next('subscribed');
      expect(subscribed.jobs.map((j) => j.id)).toEqual([job]);
      expect(client.received.map((m) => m.type)).toEqual(['welcome', 'subscribed']);
    }
  });

  it('subscribes to the job in the upgrade URL (?job=, ?since=, ?state=) right after the welcome', async () => {
    const hub = await hubWith();
    const job = await createJob(hub);
    const seq = await progress(hub, job, 3);
    const token = await hub.token('alice');
    const client = await open(`${hub.wsUrl}?token=${token}&job=${job}&since=2&state=delta`);
    const subscribed = await client.next('subscribed');
    expect(client.received.map((m) => m.type)).toEqual(['welcome', 'subscribed']);
    expect(subscribed).toMatchObject({ id: 'url', recovered: true });
    expect(subscribed.jobs.map((j) => [j.id, j.seq])).toEqual([[job, seq]]);
    expect(subscribed.events.map((e) => e.seq)).toEqual([3, 4]);
    await progress(hub, job, 1);
    const event = (await client.next('event')) as EventMessage & { patch?: object };
    expect(event.seq).toBe(seq + 1);
    expect(event.patch).toMatchObject({ seq: seq + 1 });
    // A subscription like any other: it ends by its id.
    client.send({ type: 'unsubscribe', id: 'url' });
    expect(await client.next('ack')).toMatchObject({ id: 'url' });
  });

  it('makes the URL subscription once an auth message is verified', async () => {
    const hub = await hubWith();
    const job = await createJob(hub);
    const client = await open(`${hub.wsUrl}?job=${job}`);
    client.send({ type: 'auth', token: await hub.token('alice') });
    const subscribed = await client.next('subscribed');
    expect(subscribed.id).toBe('url');
    expect(subscribed.jobs.map((j) => j.id)).toEqual([job]);
    expect(client.received.map((m) => m.type)).toEqual(['welcome', 'subscribed']);
  });

  it('answers a bad or foreign URL subscription with an error of id "url" and stays open', async () => {
    const hub = await hubWith();
    const token = await hub.token('alice');
    const bobs = await createJob(hub, 'bob');
    const cases: [string, ErrorCode][] = [
      [`job=${encodeURIComponent('not an id!')}`, ErrorCode.INVALID_MESSAGE],
      [`job=${await createJob(hub)}&since=-1`, ErrorCode.INVALID_MESSAGE],
      [`job=${await createJob(hub)}&state=compact`, ErrorCode.INVALID_MESSAGE],
      [`job=${bobs}`, ErrorCode.NOT_FOUND],
      [`job=${uid('absent')}`, ErrorCode.NOT_FOUND],
    ];
    for (const [query, code] of cases) {
      const client = await open(`${hub.wsUrl}?token=${token}&${query}`);
      expect(await client.next('error')).toMatchObject({ id: 'url', code });
      client.send({ type: 'ping', ts: 7 });
      expect((await client.next('pong')).ts).toBe(7);
      expect(client.received.map((m) => m.type)).toEqual(['welcome', 'error', 'pong']);
    }
  });

  it('authenticates with a first auth message', async () => {
    const hub = await hubWith();
    const client = await open(hub.wsUrl);
    client.send({ type: 'auth', token: await hub.token('alice') });
    expect((await client.next('welcome')).user).toBe('alice');
  });

  it('authenticates with the token offered as a subprotocol and selects "headway"', async () => {
    const hub = await hubWith();
    const client = await open(hub.wsUrl, { protocols: ['headway', await hub.token('alice')] });
    expect(client.ws.protocol).toBe('headway');
    expect((await client.next('welcome')).user).toBe('alice');
  });

  it('accepts an API key; its key id stands for the user', async () => {
    const hub = await hubWith();
    const client = await login(hub, hub.apiKey);
    expect(client.received[0]).toMatchObject({ type: 'welcome' });
    expect((client.received[0] as { user: string }).user).toMatch(/^key:/);
  });

  it('answers requests before auth with UNAUTHORIZED and still accepts a later auth', async () => {
    const hub = await hubWith();
    const client = await open(hub.wsUrl);
    client.send({ type: 'ping', ts: 1 });
    expect((await client.next('error')).code).toBe(ErrorCode.UNAUTHORIZED);
    client.send({ type: 'auth', token: await hub.token('alice') });
    await client.next('welcome');
    client.send({ type: 'ping', ts: 2 });
    expect((await client.next('pong')).ts).toBe(2);
  });

  it('closes with AUTH_TIMEOUT when no auth arrives in time', async () => {
    const hub = await hubWith({ limits: { authTimeoutMs: 200 } });
    const client = await open(hub.wsUrl);
    const started = Date.now();
    expect((await client.closed).code).toBe(CloseCode.AUTH_TIMEOUT);
    expect(Date.now() - started).toBeGreaterThanOrEqual(150);
  });

  it('closes with TOKEN_INVALID for a bad token in the query or in an auth message', async () => {
    const hub = await hubWith();
    const a = await open(`${hub.wsUrl}?token=not-a-token`);
    expect((await a.closed).code).toBe(CloseCode.TOKEN_INVALID);
    const b = await open(hub.wsUrl);
    b.send({ type: 'auth', token: 'not-a-token' });
    expect((await b.closed).code).toBe(CloseCode.TOKEN_INVALID);
  });

  it('closes with TOKEN_EXPIRED for an expired token', async () => {
    const hub = await hubWith();
    const client = await open(`${hub.wsUrl}?token=${await hub.token('alice', { ttl: -60 })}`);
    expect((await client.closed).code).toBe(CloseCode.TOKEN_EXPIRED);
  });

  it('closes with TOKEN_EXPIRED when the token expires while connected', async () => {
    const hub = await hubWith({ limits: { heartbeatMs: 100 } });
    // Seconds-resolution expiry: at least one full second remains after the connection opens.
    const client = await login(hub, await hub.token('alice', { ttl: 2 }));
    expect((await client.closed).code).toBe(CloseCode.TOKEN_EXPIRED);
  });

  it('refuses a second auth with ALREADY_AUTHENTICATED', async () => {
    const hub = await hubWith();
    const token = await hub.token('alice');
    const client = await login(hub, token);
    client.send({ type: 'auth', token });
    expect((await client.next('error')).code).toBe(ErrorCode.ALREADY_AUTHENTICATED);
  });

  it('refuses the upgrade with 403 for an origin that is not allowed, and accepts an allowed one', async () => {
    const hub = await hubWith({ allowedOrigins: ['https://app.example'] });
    const token = await hub.token('alice');
    const refused = connect(`${hub.wsUrl}?token=${token}`, { headers: { Origin: 'https://evil.example' } });
    await expect(refused).rejects.toMatchObject({ status: 403 });
    const client = await open(`${hub.wsUrl}?token=${token}`, { headers: { Origin: 'https://app.example' } });
    await client.next('welcome');
  });

  it('leaves other paths to the rest of the server', async () => {
    const hub = await hubWith();
    await expect(connect(`${hub.url.replace('http', 'ws')}/v1/other`)).rejects.toMatchObject({ status: 404 });
  });

  it('closes the 11th connection of a user with TOO_MANY_CONNECTIONS and frees a slot on close', async () => {
    const hub = await hubWith();
    const token = await hub.token('carol');
    const ten: TestClient[] = [];
    for (let i = 0; i < 10; i++) ten.push(await login(hub, token));
    const eleventh = await open(`${hub.wsUrl}?token=${token}`);
    expect((await eleventh.closed).code).toBe(CloseCode.TOO_MANY_CONNECTIONS);
    await ten[0]!.close();
    await login(hub, token);
  });

  it('does not limit the connections of an API key (a back end or a fleet of workers)', async () => {
    const hub = await hubWith({ limits: { connectionsPerUser: 2 } });
    const clients: TestClient[] = [];
    for (let i = 0; i < 4; i++) clients.push(await login(hub, hub.apiKey));
    for (const c of clients) expect(c.received[0]?.type).toBe('welcome');
  });

  it('terminates a peer that answers no pings for two heartbeat intervals', async () => {
    const hub = await hubWith({ limits: { heartbeatMs: 100 } });
    const client = await open(`${hub.wsUrl}?token=${await hub.token('alice')}`, { autoPong: false });
    await client.next('welcome');
    expect((await client.closed).code).toBe(1006);
  });
});

describe.each(stateModes)('ws transport: subscriptions, %s state', (mode) => {
  beforeEach(() => {
    stateMode = mode;
  });
  afterEach(() => {
    stateMode = 'full';
  });

  it('sends the state at once, then every event in seq order without duplicates', async () => {
    const hub = await hubWith();
    const job = await createJob(hub);
    const client = await login(hub, await hub.token('alice'));
    // Publish while subscribing, so that events race the subscription.
    const publishing = progress(hub, job, 40);
    client.send({ type: 'subscribe', id: 's1', job });
    const subscribed = await client.next('subscribed');
    expect(subscribed.recovered).toBe(false);
    expect(subscribed.events).toEqual([]);
    const last = await publishing;
    await client.next('event', (e) => e.job === job && e.seq === last);
    const seqs = eventsOf(client, job).map((e) => e.seq);
    const from = subscribed.jobs[0]!.seq;
    expect(seqs).toEqual(Array.from({ length: last - from }, (_, i) => from + 1 + i));
    // The state comes first.
    const order = client.received.filter((m) => m.type === 'subscribed' || m.type === 'event');
    expect(order[0]!.type).toBe('subscribed');
  });

  it('delivers each event once to a connection subscribed by job and by user scope', async () => {
    const hub = await hubWith();
    const job = await createJob(hub);
    const client = await login(hub, await hub.token('alice'));
    client.send({ type: 'subscribe', id: 'by-job', job });
    client.send({ type: 'subscribe', id: 'by-user', scope: 'user' });
    await client.next('subscribed', (m) => m.id === 'by-job');
    const scoped = await client.next('subscribed', (m) => m.id === 'by-user');
    expect(scoped.jobs.map((j) => j.id)).toContain(job);
    const last = await progress(hub, job, 30);
    // A sentinel event after them: a second copy of any would arrive before it.
    const before = await receivedBefore(
      () => client.received,
      (m) => m.type === 'event' && m.job === job && m.seq === last + 1,
      () => progress(hub, job, 1),
    );
    const seqs = before
      .filter((m): m is EventMessage => m.type === 'event' && m.job === job)
      .map((e) => e.seq);
    expect(seqs).toEqual(Array.from({ length: 30 }, (_, i) => last - 29 + i));
  });

  it('sends the new jobs of the user as created events to a user-scope subscriber', async () => {
    const hub = await hubWith();
    const client = await login(hub, await hub.token('dora'));
    client.send({ type: 'subscribe', id: 'mine', scope: 'user' });
    await client.next('subscribed');
    await createJob(hub, 'someone-else');
    const job = await createJob(hub, 'dora');
    const created = await client.next('event', (e) => e.kind === 'created');
    expect(created.job).toBe(job);
    expect(stateOf(created).owner).toBe('dora');
    expect(client.pending('event')).toEqual([]);
  });

  it('resumes with since: exactly the missed events, recovered', async () => {
    const hub = await hubWith();
    const job = await createJob(hub);
    const last = await progress(hub, job, 5);
    const client = await login(hub, await hub.token('alice'));
    client.send({ type: 'subscribe', id: 's', job, since: 3 });
    const subscribed = await client.next('subscribed');
    expect(subscribed.recovered).toBe(true);
    expect(subscribed.events.map((e) => e.seq)).toEqual([4, 5, 6]);
    expect(subscribed.jobs[0]!.seq).toBe(last);
    const next = await progress(hub, job, 1);
    expect((await client.next('event')).seq).toBe(next);
  });

  it('resumes a scope subscription with since per job', async () => {
    const hub = await hubWith();
    const a = await createJob(hub, 'erin');
    const b = await createJob(hub, 'erin');
    await progress(hub, a, 3);
    await progress(hub, b, 2);
    const client = await login(hub, await hub.token('erin'));
    client.send({ type: 'subscribe', id: 's', scope: 'user', since: { [a]: 2, [b]: 3 } });
    const subscribed = await client.next('subscribed');
    expect(subscribed.recovered).toBe(true);
    expect(subscribed.events.map((e) => [e.job, e.seq])).toEqual([
      [a, 3],
      [a, 4],
    ]);
    expect(subscribed.jobs.map((j) => j.id).sort()).toEqual([a, b].sort());
  });

  it('answers a resume beyond the replay limit with the state, not recovered', async () => {
    const hub = await hubWith({ limits: { replayLimit: 5 } });
    const job = await createJob(hub);
    const last = await progress(hub, job, 20);
    const client = await login(hub, await hub.token('alice'));
    client.send({ type: 'subscribe', id: 's', job, since: 2 });
    const subscribed = await client.next('subscribed');
    expect(subscribed.recovered).toBe(false);
    expect(subscribed.events).toEqual([]);
    expect(subscribed.jobs[0]!.seq).toBe(last);
  });

  it('resumes exactly the missed events across a hub restart on the same data', async () => {
    const first = await hubWith();
    const job = await createJob(first);
    await progress(first, job, 2);
    const client = await login(first, await first.token('alice'));
    client.send({ type: 'subscribe', id: 's', job });
    const seen = (await client.next('subscribed')).jobs[0]!.seq;
    const before = await progress(first, job, 3);
    await client.next('event', (e) => e.seq === before);
    const lastSeen = before - 1; // pretend the last event was lost with the connection
    await client.close();
    await progress(first, job, 2);
    const second = await first.restart();
    hubs.push(second);
    await progress(second, job, 2);
    const again = await login(second, await second.token('alice'));
    again.send({ type: 'subscribe', id: 's', job, since: lastSeen });
    const subscribed = await again.next('subscribed');
    expect(seen).toBe(3);
    expect(subscribed.recovered).toBe(true);
    expect(subscribed.events.map((e) => e.seq)).toEqual([6, 7, 8, 9, 10]);
    expect(subscribed.jobs[0]!.seq).toBe(10);
  });

  it('reports a job that is not yours exactly like a job that does not exist', async () => {
    const hub = await hubWith();
    const theirs = await createJob(hub, 'mallory');
    const missing = uid();
    const client = await login(hub, await hub.token('alice'));
    const errorFor = async (type: string, job: string) => {
      client.send({ type, id: `${type}-${job}`, job });
      return client.next('error', (e) => e.id === `${type}-${job}`);
    };
    for (const type of ['subscribe', 'get_state', 'cancel']) {
      const hidden = await errorFor(type, theirs);
      const absent = await errorFor(type, missing);
      expect(hidden.code).toBe(ErrorCode.NOT_FOUND);
      expect(absent.code).toBe(ErrorCode.NOT_FOUND);
      // Same shape once the id the client itself sent is masked.
      expect(hidden.message.replace(theirs, '<id>')).toBe(absent.message.replace(missing, '<id>'));
    }
  });

  it('limits a job-scoped token to its jobs', async () => {
    const hub = await hubWith();
    const allowed = await createJob(hub);
    const other = await createJob(hub);
    const client = await login(hub, await hub.token('alice', { jobs: [allowed] }));
    client.send({ type: 'subscribe', id: 'other', job: other });
    expect((await client.next('error')).code).toBe(ErrorCode.NOT_FOUND);
    client.send({ type: 'subscribe', id: 'mine', scope: 'user' });
    const subscribed = await client.next('subscribed');
    expect(subscribed.jobs.map((j) => j.id)).toEqual([allowed]);
    await progress(hub, other, 1);
    const last = await progress(hub, allowed, 1);
    await client.next('event', (e) => e.seq === last && e.job === allowed);
    expect(eventsOf(client, other)).toEqual([]);
  });

  it('allows the "all" scope to admins and API keys only', async () => {
    const hub = await hubWith();
    const job = await createJob(hub, 'frank');
    const user = await login(hub, await hub.token('alice'));
    user.send({ type: 'subscribe', id: 'all', scope: 'all' });
    expect((await user.next('error')).code).toBe(ErrorCode.FORBIDDEN);
    const admin = await login(hub, await hub.token('root', { admin: true }));
    admin.send({ type: 'subscribe', id: 'all', scope: 'all' });
    expect((await admin.next('subscribed')).jobs.map((j) => j.id)).toContain(job);
    const key = await login(hub, hub.apiKey);
    key.send({ type: 'subscribe', id: 'u', scope: 'user' });
    expect((await key.next('error')).code).toBe(ErrorCode.FORBIDDEN);
    key.send({ type: 'subscribe', id: 'all', scope: 'all' });
    await key.next('subscribed');
    const last = await progress(hub, job, 1);
    await admin.next('event', (e) => e.seq === last);
    await key.next('event', (e) => e.seq === last);
  });

  it('refuses duplicate ids and too many subscriptions; unsubscribes', async () => {
    const hub = await hubWith({ limits: { maxSubscriptions: 2 } });
    const job = await createJob(hub);
    const client = await login(hub, await hub.token('alice'));
    client.send({ type: 'subscribe', id: 'a', job });
    await client.next('subscribed');
    client.send({ type: 'subscribe', id: 'a', job });
    expect((await client.next('error')).code).toBe(ErrorCode.DUPLICATE_SUBSCRIPTION);
    client.send({ type: 'subscribe', id: 'b', scope: 'user' });
    await client.next('subscribed');
    client.send({ type: 'subscribe', id: 'c', job });
    expect((await client.next('error')).code).toBe(ErrorCode.TOO_MANY_SUBSCRIPTIONS);
    client.send({ type: 'unsubscribe', id: 'a' });
    expect((await client.next('ack')).id).toBe('a');
    client.send({ type: 'unsubscribe', id: 'a' });
    expect((await client.next('error')).code).toBe(ErrorCode.UNKNOWN_SUBSCRIPTION);
    client.send({ type: 'unsubscribe', id: 'b' });
    await client.next('ack');
    // Nothing is delivered once every subscription is gone.
    await progress(hub, job, 2);
    client.send({ type: 'ping' });
    await client.next('pong');
    expect(client.pending('event')).toEqual([]);
  });

  it('answers get_state with the job state', async () => {
    const hub = await hubWith();
    const job = await createJob(hub);
    const seq = await progress(hub, job, 2);
    const client = await login(hub, await hub.token('alice'));
    client.send({ type: 'get_state', id: 'g', job });
    const state = await client.next('state');
    expect(state.id).toBe('g');
    expect(state.job.seq).toBe(seq);
  });
});

describe('ws transport: control', () => {
  it('acks cancel, pause and resume with the new state, and subscribers see the requests', async () => {
    const hub = await hubWith();
    const job = await createJob(hub);
    await progress(hub, job, 1);
    const watcher = await login(hub, await hub.token('alice'));
    watcher.send({ type: 'subscribe', id: 's', job });
    await watcher.next('subscribed');
    const client = await login(hub, await hub.token('alice'));
    client.send({ type: 'pause', id: 'p', job });
    expect((await client.next('ack', (a) => a.id === 'p')).job?.control.paused).toBe(true);
    client.send({ type: 'resume', id: 'r', job });
    expect((await client.next('ack', (a) => a.id === 'r')).job?.control.paused).toBe(false);
    client.send({ type: 'cancel', id: 'c', job, reason: 'user asked' });
    const ack = await client.next('ack', (a) => a.id === 'c');
    expect(ack.job?.control.cancelRequested).toBe(true);
    expect((await hub.server.hub.getJob(job))?.control.cancelRequested).toBe(true);
    const requested = await watcher.next('event', (e) => e.kind === 'cancel_requested');
    expect(requested.data).toMatchObject({ reason: 'user asked', by: 'alice' });
  });

  it('answers a hub error with its code', async () => {
    const hub = await hubWith();
    const job = await createJob(hub);
    await hub.server.hub.publish(job, [{ kind: 'completed' }]);
    const client = await login(hub, await hub.token('alice'));
    client.send({ type: 'cancel', id: 'c', job });
    const error = await client.next('error');
    expect(error).toMatchObject({ id: 'c', code: ErrorCode.JOB_FINISHED });
  });
});

describe('ws transport: bad input and limits', () => {
  it('answers malformed, unknown and invalid messages and stays open', async () => {
    const hub = await hubWith();
    const client = await login(hub, await hub.token('alice'));
    client.sendRaw('{not json');
    expect((await client.next('error')).code).toBe(ErrorCode.BAD_JSON);
    client.sendRaw(Buffer.from('{"type":"ping"}'), true);
    expect((await client.next('error')).code).toBe(ErrorCode.BAD_JSON);
    client.send({ type: 'launch', id: 'x' });
    const unknown = await client.next('error');
    expect(unknown.code).toBe(ErrorCode.UNKNOWN_TYPE);
    expect(unknown.id).toBe('x');
    client.send({ type: 'subscribe', id: 'y' });
    expect((await client.next('error')).code).toBe(ErrorCode.INVALID_MESSAGE);
    client.send({ type: 'ping', ts: 42 });
    expect((await client.next('pong')).ts).toBe(42);
    expect(client.ws.readyState).toBe(client.ws.OPEN);
  });

  it('closes with PROTOCOL_VIOLATION after too many invalid messages', async () => {
    const hub = await hubWith({ limits: { maxInvalidMessages: 20 } });
    const client = await login(hub, await hub.token('alice'));
    for (let i = 0; i < 25; i++) client.sendRaw('nope');
    expect((await client.closed).code).toBe(CloseCode.PROTOCOL_VIOLATION);
    expect(client.received.filter((m) => m.type === 'error')).toHaveLength(20);
  });

  it('drops messages over the rate with RATE_LIMITED and closes a sustained flood', async () => {
    const hub = await hubWith({ limits: { messagesPerSecond: 5 } });
    const client = await login(hub, await hub.token('alice'));
    // The bucket refills by the clock: the test stops the clock and moves it on
    // by a second, rather than waiting for one.
    vi.useFakeTimers({ toFake: ['Date'] });
    for (let i = 0; i < 8; i++) client.send({ type: 'ping', ts: i });
    const limited = await client.next('error');
    expect(limited.code).toBe(ErrorCode.RATE_LIMITED);
    vi.setSystemTime(Date.now() + 1100);
    client.send({ type: 'ping', ts: 100 });
    await client.next('pong', (p) => p.ts === 100);
    expect(client.pending('pong').length).toBeLessThanOrEqual(6);

    for (let i = 0; i < 40; i++) client.send({ type: 'ping', ts: i });
    expect((await client.closed).code).toBe(CloseCode.PROTOCOL_VIOLATION);
  });

  it('closes with 1009 on a frame over maxMessageBytes', async () => {
    const hub = await hubWith({ limits: { maxMessageBytes: 1024 } });
    const client = await login(hub, await hub.token('alice'));
    client.send({ type: 'ping', pad: 'x'.repeat(2048) });
    expect((await client.closed).code).toBe(CloseCode.MESSAGE_TOO_BIG);
  });
});

describe.each(stateModes)('ws transport: slow readers and shutdown, %s state', (mode) => {
  beforeEach(() => {
    stateMode = mode;
  });
  afterEach(() => {
    stateMode = 'full';
  });

  /** A transport of its own on the hub's context, so that the test can read its outbox statistics. */
  async function ownTransport(hub: TestHub): Promise<{ transport: WsTransport; url: string }> {
    const transport = new WsTransport(hub.server.context);
    const server: Server = createHttpServer((_req, res) => res.writeHead(404).end());
    server.on('upgrade', (req, socket, head) => {
      if (!transport.handleUpgrade(req, socket, head)) socket.destroy();
    });
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    cleanups.push(async () => {
      await transport.close();
      server.closeAllConnections();
      await new Promise((resolve) => server.close(resolve));
    });
    const { port } = server.address() as AddressInfo;
    return { transport, url: `ws://127.0.0.1:${port}/v1/ws` };
  }

  async function counter(hub: TestHub, name: 'collapsed' | 'slowReaderCloses'): Promise<number> {
    const metric = await hub.server.context.metrics[name].get();
    return metric.values.reduce((sum, v) => sum + v.value, 0);
  }

  it('collapses queued progress for a reader that stopped, within the hard limit, and still delivers the outcome', async () => {
    const hub = await hubWith();
    const { transport, url } = await ownTransport(hub);
    const limits = hub.server.options.limits;
    const job = await createJob(hub);
    const client = await open(`${url}?token=${await hub.token('alice')}`);
    await client.next('welcome');
    client.send({ type: 'subscribe', id: 's', job });
    const first = (await client.next('subscribed')).jobs[0]!;
    rawSocket(client).pause();

    const message = 'x'.repeat(4000);
    for (let i = 0; i < 20; i++) {
      const batch = Array.from({ length: 100 }, (_, k) => ({
        kind: 'progress' as const,
        percent: Math.min(99, i * 5 + k / 20),
        message,
      }));
      await hub.server.hub.publish(job, batch);
      await sleep(1);
    }
    const done = await hub.server.hub.publish(job, [{ kind: 'completed', result: { ok: true } }]);

    await waitFor(async () => (await counter(hub, 'collapsed')) > 0, 'queued progress to collapse');
    expect(transport.stats().peakOutboxBytes).toBeLessThanOrEqual(limits.outboxHardBytes);

    rawSocket(client).resume();
    const outcome = await Promise.race([
      client.next('event', (e) => e.kind === 'completed', 15_000),
      client.closed.then((c) => c.code),
    ]);
    if (typeof outcome === 'number') {
      // Closed as a slow reader: resuming tells how the job ended.
      expect(outcome).toBe(CloseCode.SLOW_READER);
      const again = await open(`${url}?token=${await hub.token('alice')}`);
      const seen = eventsOf(client, job).at(-1)?.seq ?? 1;
      again.send({ type: 'subscribe', id: 's', job, since: seen });
      expect((await again.next('subscribed')).jobs[0]!.status).toBe('completed');
    } else {
      expect(outcome.seq).toBe(done.seq);
      const seqs = eventsOf(client, job).map((e) => e.seq);
      expect([...seqs].sort((a, b) => a - b)).toEqual(seqs);
      expect(new Set(seqs).size).toBe(seqs.length);
      // Whole states or merged patches: what the reader folds is the job's state.
      expect(folded(first, eventsOf(client, job))).toEqual(await hub.server.hub.getJob(job));
    }
  });

  it('closes a reader over the hard limit with SLOW_READER; resuming recovers the outcome', async () => {
    const hub = await hubWith({ limits: { outboxSoftBytes: 16 * 1024, outboxHardBytes: 64 * 1024 } });
    const { transport, url } = await ownTransport(hub);
    const job = await createJob(hub);
    const token = await hub.token('alice');
    const client = await open(`${url}?token=${token}`);
    await client.next('welcome');
    client.send({ type: 'subscribe', id: 's', job });
    await client.next('subscribed');
    rawSocket(client).pause();

    // Log events never collapse: the queue can only grow until the hard limit.
    const message = 'y'.repeat(4000);
    for (let i = 0; i < 30 && (await counter(hub, 'slowReaderCloses')) === 0; i++) {
      const batch = Array.from({ length: 100 }, () => ({ kind: 'log' as const, message }));
      await hub.server.hub.publish(job, batch);
      await sleep(1);
    }
    await hub.server.hub.publish(job, [{ kind: 'completed' }]);
    expect(await counter(hub, 'slowReaderCloses')).toBe(1);
    expect(transport.stats().peakOutboxBytes).toBeLessThanOrEqual(64 * 1024);

    rawSocket(client).resume();
    expect((await client.closed).code).toBe(CloseCode.SLOW_READER);
    const seen = eventsOf(client, job).at(-1)?.seq ?? 1;
    const again = await open(`${url}?token=${token}`);
    again.send({ type: 'subscribe', id: 's', job, since: seen });
    const subscribed = await again.next('subscribed');
    expect(subscribed.jobs[0]!.status).toBe('completed');
    if (subscribed.recovered) expect(subscribed.events.at(-1)?.kind).toBe('completed');
  });

  it('closes clients with SHUTDOWN when the server closes', async () => {
    const hub = await hubWith();
    const client = await login(hub, await hub.token('alice'));
    await hub.close();
    expect((await client.closed).code).toBe(CloseCode.SHUTDOWN);
  });
});
