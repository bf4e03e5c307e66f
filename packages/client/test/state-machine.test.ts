/**
 * The connection state machine, against a small local fake hub that the test
 * scripts message by message: states and reasons, backoff, close codes, token
 * refresh, heartbeats, offline/online, visibility, resume and gap filling.
 */
import type { ClientMessage } from '@headway/protocol';
import { CloseCode, ErrorCode } from '@headway/protocol/codes';
import { receivedBefore, waitFor } from '@headway/test-helpers';
import { afterEach, describe, expect, it, vi } from 'vitest';
import WebSocket from 'ws';
import { createClient, type HeadwayClient } from '../src/client.js';
import { ClientErrorCode, type HeadwayClientError } from '../src/errors.js';
import type { ClientOptions, NetworkTarget, StateChange, VisibilityTarget } from '../src/types.js';
import {
  eventMessage,
  type FakeConnection,
  type FakeHub,
  jobState,
  progressEvent,
  startFakeHub,
} from './fake-hub.js';

const hubs: FakeHub[] = [];
const clients: HeadwayClient[] = [];

afterEach(async () => {
  vi.useRealTimers();
  for (const c of clients.splice(0)) c.close();
  await Promise.all(hubs.splice(0).map((h) => h.close()));
});

async function fake(options?: Parameters<typeof startFakeHub>[0]): Promise<FakeHub> {
  const hub = await startFakeHub(options);
  hubs.push(hub);
  return hub;
}

function client(hub: FakeHub, options: Partial<ClientOptions> = {}) {
  const c = createClient({
    url: hub.url,
    token: 'token-1',
    WebSocket: WebSocket as unknown as ClientOptions['WebSocket'],
    transports: ['ws'],
    shared: false,
    ...options,
  });
  clients.push(c);
  const states: StateChange[] = [];
  const errors: HeadwayClientError[] = [];
  c.on('state', (s) => states.push(s));
  c.on('error', ({ error }) => errors.push(error));
  return { c, states, errors };
}

/**
 * Fake timers for a test that checks that the client does not try again: every
 * reconnect, retry and heartbeat the client schedules is then one the test can
 * run to the end (`vi.runAllTimersAsync`) instead of sleeping past it.
 */
function fakeTimers(): void {
  vi.useFakeTimers({ toFake: ['setTimeout', 'clearTimeout', 'setInterval', 'clearInterval'] });
}

/** A WebSocket class for the client that counts the connections it opens. */
function countingWebSocket(): { WebSocket: ClientOptions['WebSocket']; opened: () => number } {
  let opened = 0;
  class Counting extends WebSocket {
    constructor(...args: ConstructorParameters<typeof WebSocket>) {
      super(...args);
      opened++;
    }
  }
  return { WebSocket: Counting as unknown as ClientOptions['WebSocket'], opened: () => opened };
}

/**
 * What the fake hub received on `conn` before the client's subscription to a new
 * job `sentinel`: the client writes its messages to one socket in order, so
 * anything it sent on the way (an unsubscribe, say) is in there, not racing it.
 * The sentinel's own subscribe is not included.
 */
function sentBefore(c: HeadwayClient, conn: FakeConnection, sentinel: string) {
  return receivedBefore(
    () => conn.received,
    (m) => m.type === 'subscribe' && 'job' in m && m.job === sentinel,
    () => c.job(sentinel),
  );
}

/** A sentinel job's subscription, which a test leaves out of what it compares. */
const isSentinel = (m: ClientMessage) => m.type === 'subscribe' && 'job' in m && m.job.startsWith('sentinel');

/** An EventTarget with an `onLine` flag, standing in for `window`. */
function network(): NetworkTarget & { onLine: boolean; set(online: boolean): void } {
  const target = new EventTarget() as EventTarget & { onLine: boolean; set(online: boolean): void };
  target.onLine = true;
  target.set = (online) => {
    target.onLine = online;
    target.dispatchEvent(new Event(online ? 'online' : 'offline'));
  };
  return target as never;
}

/** A fake unsigned JWT with these claims (the fake hub does not verify it). */
function jwt(claims: Record<string, unknown>): string {
  const part = (v: unknown) => Buffer.from(JSON.stringify(v)).toString('base64url');
  return `${part({ alg: 'none' })}.${part(claims)}.sig`;
}

describe('options', () => {
  it.each([
    [{ url: 'ftp://x', token: 't' }],
    [{ url: 'http://x', token: '' }],
    [{ url: 'http://x', token: 't', minReconnectDelayMs: -1 }],
    [{ url: 'http://x', token: 't', minReconnectDelayMs: 5000, maxReconnectDelayMs: 1000 }],
    [{ url: 'http://x', token: 't', transports: ['sse' as const], EventSource: undefined, fetch: undefined }],
  ])('refuses contradictory or invalid options: %j', (options) => {
    const g = globalThis as { EventSource?: unknown };
    const saved = g.EventSource;
    delete g.EventSource;
    try {
      expect(() => createClient(options as ClientOptions)).toThrow(TypeError);
    } finally {
      if (saved) g.EventSource = saved;
    }
  });

  it('refuses an invalid job id and scope', async () => {
    const hub = await fake();
    const { c } = client(hub);
    expect(() => c.job('a b')).toThrow(TypeError);
    expect(() => c.jobs({ scope: 'mine' as 'user' })).toThrow(TypeError);
    expect(c.state).toBe('idle');
  });
});

describe('state machine', () => {
  it('goes idle → connecting → connected on the first job, offering the token as a subprotocol', async () => {
    const hub = await fake();
    const { c, states } = client(hub);
    expect(c.state).toBe('idle');
    const h = c.job('j1');
    const conn = await hub.next();
    expect(conn.token).toBe('token-1');
    const sub = await conn.next('subscribe');
    expect(sub).toMatchObject({ type: 'subscribe', job: 'j1' });
    expect('since' in sub).toBe(false);
    expect(states.map((s) => [s.oldState, s.newState, s.reason])).toEqual([
      ['idle', 'connecting', 'connect'],
      ['connecting', 'connected', 'connected'],
    ]);
    expect(c.transport).toBe('ws');
    expect(c.user).toBe('alice');
    conn.send({ type: 'subscribed', id: sub.id, jobs: [jobState('j1', 3)], events: [], recovered: false });
    await waitFor(() => h.state?.seq === 3);
  });

  it('backs off with capped full jitter and resets the backoff after a success', async () => {
    const hub = await fake({ autoWelcome: false });
    const { c, states } = client(hub, {
      random: () => 0.5,
      minReconnectDelayMs: 40,
      maxReconnectDelayMs: 200,
    });
    c.connect();
    // Five attempts refused with a reconnect code before the welcome: ceilings 40, 80, 160, 200, 200.
    for (let i = 0; i < 5; i++) (await hub.next()).close(CloseCode.RECONNECT);
    const expected = [20, 40, 80, 100];
    for (let i = 0; i < expected.length; i++) {
      const gap = hub.connections[i + 1]!.at - hub.connections[i]!.at;
      expect(gap).toBeGreaterThanOrEqual(expected[i]! - 2);
    }
    expect(states[1]).toMatchObject({ newState: 'reconnecting', reason: 'connect-failed', delayMs: 20 });
    const ok = await hub.next();
    expect(ok.at - hub.connections[4]!.at).toBeGreaterThanOrEqual(98);
    ok.welcome();
    await waitFor(() => c.state === 'connected');
    // Lost after a success: the first delay again.
    const before = states.length;
    ok.close(CloseCode.SHUTDOWN);
    await waitFor(() => states.length > before);
    expect(states[before]).toMatchObject({
      newState: 'reconnecting',
      reason: 'lost',
      code: CloseCode.SHUTDOWN,
      delayMs: 20,
    });
    (await hub.next()).welcome();
    await waitFor(() => c.state === 'connected');
  });

  it('stops on a close code of the "do not reconnect" range', async () => {
    fakeTimers();
    const hub = await fake();
    const ws = countingWebSocket();
    const { c, states, errors } = client(hub, { minReconnectDelayMs: 10, WebSocket: ws.WebSocket });
    c.connect();
    (await hub.next()).close(CloseCode.TOO_MANY_CONNECTIONS);
    await waitFor(() => c.state === 'closed');
    expect(states.at(-1)).toMatchObject({
      newState: 'closed',
      reason: 'stop',
      code: CloseCode.TOO_MANY_CONNECTIONS,
    });
    expect(errors.map((e) => e.code)).toEqual([ClientErrorCode.STOPPED]);
    // Whatever the client still had scheduled has run: it opened no other connection.
    await vi.runAllTimersAsync();
    expect(ws.opened()).toBe(1);
    expect(hub.connections).toHaveLength(1);
  });

  it('calls the token function again after a refresh-token close code', async () => {
    const hub = await fake();
    let calls = 0;
    const { c } = client(hub, { token: async () => `token-${++calls}`, minReconnectDelayMs: 10 });
    c.connect();
    const first = await hub.next();
    expect(first.token).toBe('token-1');
    first.close(CloseCode.TOKEN_EXPIRED);
    const second = await hub.next();
    expect(second.token).toBe('token-2');
    await waitFor(() => c.state === 'connected');
    expect(calls).toBe(2);
  });

  it('stops when a fixed token is refused: it cannot become valid', async () => {
    const hub = await fake();
    const { c, states } = client(hub, { minReconnectDelayMs: 10 });
    c.connect();
    (await hub.next()).close(CloseCode.TOKEN_INVALID);
    await waitFor(() => c.state === 'closed');
    expect(states.at(-1)?.code).toBe(CloseCode.TOKEN_INVALID);
  });

  it('retries with backoff when the token function fails, and reports it', async () => {
    const hub = await fake();
    let calls = 0;
    const { c, states, errors } = client(hub, {
      minReconnectDelayMs: 10,
      token: async () => {
        if (++calls === 1) throw new Error('auth server down');
        return 'token-ok';
      },
    });
    c.connect();
    expect((await hub.next()).token).toBe('token-ok');
    expect(states[1]).toMatchObject({ newState: 'reconnecting', reason: 'token-error' });
    expect(errors.map((e) => e.code)).toEqual([ClientErrorCode.TOKEN]);
  });

  it('refreshes a token shortly before its exp and moves over without a reconnecting state', async () => {
    const hub = await fake();
    let calls = 0;
    const { c, states } = client(hub, {
      token: async () => jwt({ sub: 'alice', n: ++calls, exp: Math.floor(Date.now() / 1000) + 2 }),
      tokenRefreshMarginMs: 1500,
    });
    c.job('j1');
    const first = await hub.next();
    await first.next('subscribe');
    const second = await hub.next(3000);
    expect(second.token).not.toBe(first.token);
    // The new connection resubscribes; the old one is closed by the client.
    await second.next('subscribe');
    await waitFor(() => first.closed);
    expect(states.map((s) => s.newState)).toEqual(['connecting', 'connected']);
    expect(calls).toBe(2);
  });

  it('pings every heartbeatMs and reconnects when a pong is missing', async () => {
    const hub = await fake({ autoPong: false, heartbeatMs: 50 });
    const { c, states } = client(hub, { minReconnectDelayMs: 10 });
    c.connect();
    const conn = await hub.next();
    await conn.next('ping');
    await hub.next(2000);
    expect(states.find((s) => s.newState === 'reconnecting')).toMatchObject({
      reason: 'heartbeat-timeout',
      code: CloseCode.HEARTBEAT_TIMEOUT,
    });
    await waitFor(() => conn.closed);
  });

  it('stays connected while pongs come back', async () => {
    const hub = await fake({ heartbeatMs: 30 });
    const { c, states } = client(hub);
    c.connect();
    const conn = await hub.next();
    for (let i = 0; i < 4; i++) await conn.next('ping');
    expect(states.map((s) => s.newState)).toEqual(['connecting', 'connected']);
    expect(hub.connections).toHaveLength(1);
  });

  it('pauses while offline and reconnects at once when back online', async () => {
    fakeTimers();
    const hub = await fake();
    const net = network();
    const ws = countingWebSocket();
    const { c, states } = client(hub, {
      WebSocket: ws.WebSocket,
      network: net,
      minReconnectDelayMs: 60_000,
      maxReconnectDelayMs: 60_000,
    });
    c.connect();
    const first = await hub.next();
    await waitFor(() => c.state === 'connected');
    net.set(false);
    expect(c.state).toBe('reconnecting');
    expect(states.at(-1)).toMatchObject({ reason: 'offline' });
    await waitFor(() => first.closed);
    await vi.runAllTimersAsync();
    expect(ws.opened()).toBe(1);
    expect(hub.connections).toHaveLength(1);
    net.set(true);
    await hub.next(2000);
    await waitFor(() => c.state === 'connected');
  });

  it('does not try while offline at start', async () => {
    fakeTimers();
    const hub = await fake();
    const net = network();
    net.onLine = false;
    const ws = countingWebSocket();
    const { c } = client(hub, { network: net, WebSocket: ws.WebSocket });
    c.connect();
    await vi.runAllTimersAsync();
    expect(ws.opened()).toBe(0);
    expect(c.state).toBe('reconnecting');
    expect(hub.connections).toHaveLength(0);
    net.set(true);
    await hub.next(2000);
  });

  it('reconnects at once when the page becomes visible', async () => {
    const hub = await fake();
    const target = new EventTarget() as EventTarget & { visibilityState: string };
    target.visibilityState = 'hidden';
    const { c } = client(hub, {
      visibility: target as unknown as VisibilityTarget,
      random: () => 0.99,
      minReconnectDelayMs: 60_000,
      maxReconnectDelayMs: 60_000,
    });
    c.connect();
    (await hub.next()).terminate();
    await waitFor(() => c.state === 'reconnecting');
    target.visibilityState = 'visible';
    target.dispatchEvent(new Event('visibilitychange'));
    await hub.next(2000);
  });

  it('closes for good on close(): no more attempts, no timers left', async () => {
    fakeTimers();
    const hub = await fake();
    const ws = countingWebSocket();
    const { c, states } = client(hub, {
      WebSocket: ws.WebSocket,
      random: () => 0.99,
      minReconnectDelayMs: 100,
      maxReconnectDelayMs: 100,
    });
    c.connect();
    const conn = await hub.next();
    conn.close(CloseCode.RECONNECT);
    await waitFor(() => states.some((s) => s.newState === 'reconnecting'));
    c.close();
    expect(states.at(-1)).toMatchObject({ oldState: 'reconnecting', newState: 'closed', reason: 'close' });
    // The reconnect that was due after ~100 ms never comes, however long one waits.
    await vi.runAllTimersAsync();
    expect(ws.opened()).toBe(1);
    expect(hub.connections).toHaveLength(1);
    expect(c.state).toBe('closed');
  });
});

describe('resume', () => {
  async function subscribed(hub: FakeHub, c: HeadwayClient, id: string, seq: number) {
    const h = c.job(id);
    const seen: number[] = [];
    h.on('event', ({ event }) => seen.push(event.seq));
    const conn = await hub.next();
    const sub = await conn.next('subscribe');
    conn.send({ type: 'subscribed', id: sub.id, jobs: [jobState(id, seq)], events: [], recovered: false });
    await waitFor(() => h.state?.seq === seq);
    return { h, seen, conn };
  }

  it('resubscribes with the last seq and applies the replay once, in order', async () => {
    const hub = await fake();
    const { c } = client(hub, { minReconnectDelayMs: 5 });
    const { h, seen, conn } = await subscribed(hub, c, 'j1', 3);
    conn.send(eventMessage('j1', 4));
    conn.send(eventMessage('j1', 5));
    conn.send(eventMessage('j1', 5));
    await waitFor(() => seen.length === 2);
    conn.terminate();
    const again = await hub.next();
    const sub = await again.next('subscribe');
    expect(sub).toMatchObject({ job: 'j1', since: 5 });
    again.send({
      type: 'subscribed',
      id: sub.id,
      jobs: [jobState('j1', 7)],
      events: [progressEvent('j1', 6), progressEvent('j1', 7)],
      recovered: true,
    });
    again.send(eventMessage('j1', 7));
    again.send(eventMessage('j1', 8));
    await waitFor(() => seen.length === 5);
    expect(h.state?.seq).toBe(8);
    // A sentinel event after them: a repeat of any would be handed over before it.
    const before = await receivedBefore(
      () => seen,
      (seq) => seq === 9,
      () => again.send(eventMessage('j1', 9)),
    );
    expect(before).toEqual([4, 5, 6, 7, 8]);
  });

  it('fills a gap from the history endpoint, in order, before later events', async () => {
    const hub = await fake();
    const { c } = client(hub);
    const { h, seen, conn } = await subscribed(hub, c, 'j1', 3);
    hub.history.set(
      'j1',
      [4, 5, 6].map((seq) => progressEvent('j1', seq)),
    );
    const states: number[] = [];
    h.on('change', ({ state }) => states.push(state.seq));
    conn.send(eventMessage('j1', 6));
    conn.send(eventMessage('j1', 7));
    await waitFor(() => seen.length === 4);
    expect(seen).toEqual([4, 5, 6, 7]);
    expect(hub.historyRequests).toEqual(['j1:3']);
    // Filled events carry the newest state known; each later event its own.
    expect(states).toEqual([6, 6, 6, 7]);
    expect(h.state?.seq).toBe(7);
  });

  it('replaces the state and emits reset when the hub could not recover', async () => {
    const hub = await fake();
    const { c } = client(hub, { minReconnectDelayMs: 5 });
    const { h, seen, conn } = await subscribed(hub, c, 'j1', 3);
    const resets: number[] = [];
    h.on('reset', ({ state }) => resets.push(state.seq));
    conn.terminate();
    const again = await hub.next();
    const sub = await again.next('subscribe');
    expect(sub.since).toBe(3);
    again.send({
      type: 'subscribed',
      id: sub.id,
      jobs: [jobState('j1', 2000)],
      events: [],
      recovered: false,
    });
    await waitFor(() => resets.length === 1);
    expect(resets).toEqual([2000]);
    expect(seen).toEqual([]);
    expect(h.state?.seq).toBe(2000);
    expect(hub.historyRequests).toEqual([]);
  });

  it('resets to the newest state when the history cannot fill the gap', async () => {
    const hub = await fake();
    const { c } = client(hub);
    const { h, seen, conn } = await subscribed(hub, c, 'j1', 3);
    const resets: number[] = [];
    h.on('reset', ({ state }) => resets.push(state.seq));
    conn.send(eventMessage('j1', 9));
    await waitFor(() => resets.length === 1);
    expect(resets).toEqual([9]);
    expect(seen).toEqual([]);
    conn.send(eventMessage('j1', 10));
    await waitFor(() => seen.length === 1);
    expect(seen).toEqual([10]);
  });

  it('resumes a scope with the seqs of its unfinished jobs and adds new jobs', async () => {
    const hub = await fake();
    const { c } = client(hub, { minReconnectDelayMs: 5 });
    const jobs = c.jobs();
    const added: string[] = [];
    jobs.on('add', ({ state }) => added.push(state.id));
    const conn = await hub.next();
    const sub = await conn.next('subscribe');
    expect(sub).toMatchObject({ scope: 'user' });
    conn.send({
      type: 'subscribed',
      id: sub.id,
      jobs: [
        jobState('a', 2),
        jobState('b', 5, { status: 'completed' }),
        jobState('theirs', 1, { owner: 'bob' }),
      ],
      events: [],
      recovered: false,
    });
    conn.send({ type: 'event', ...progressEvent('c', 1), kind: 'created', state: jobState('c', 1) } as never);
    await waitFor(() => added.length === 3);
    expect(jobs.list().map((s) => s.id)).toEqual(expect.arrayContaining(['a', 'b', 'c']));
    conn.terminate();
    const again = await hub.next();
    const resub = await again.next('subscribe');
    expect(resub).toMatchObject({ scope: 'user', since: { a: 2, c: 1 } });
  });

  it('resolves cancel() with the ack of the hub', async () => {
    const hub = await fake();
    const { c } = client(hub);
    const h = c.job('j1');
    const conn = await hub.next();
    await conn.next('subscribe');
    const pending = h.cancel('no longer needed');
    const request = await conn.next('cancel');
    expect(request).toMatchObject({ job: 'j1', reason: 'no longer needed' });
    const after = jobState('j1', 4, { control: { cancelRequested: true, paused: false } });
    conn.send({ type: 'ack', id: request.id, job: after });
    await expect(pending).resolves.toEqual(after);
    const refused = h.pause();
    const pause = await conn.next('pause');
    conn.send({ type: 'error', id: pause.id, code: ErrorCode.NOT_FOUND, message: 'gone' });
    await expect(refused).rejects.toMatchObject({ code: ErrorCode.NOT_FOUND });
  });

  it('reports a failed subscription on its handle', async () => {
    const hub = await fake();
    const { c } = client(hub);
    const h = c.job('missing');
    const errors: string[] = [];
    h.on('error', ({ error }) => errors.push(error.code));
    const conn = await hub.next();
    const sub = await conn.next('subscribe');
    conn.send({ type: 'error', id: sub.id, code: ErrorCode.NOT_FOUND, message: 'not found' });
    await waitFor(() => errors.length === 1);
    expect(errors).toEqual([ErrorCode.NOT_FOUND]);
    expect(h.error?.code).toBe(ErrorCode.NOT_FOUND);
    // The failed subscription is not torn down with an unsubscribe the hub would refuse.
    h.close();
    const before = await sentBefore(c, conn, 'sentinel');
    expect(before.filter((m) => m.type === 'unsubscribe')).toEqual([]);
  });

  it('unsubscribes when the last handle of a job closes, once per tick', async () => {
    const hub = await fake();
    const { c } = client(hub);
    const a = c.job('j1');
    const b = c.job('j1');
    const conn = await hub.next();
    await conn.next('subscribe');
    a.close();
    const whileB = await sentBefore(c, conn, 'sentinel-1');
    expect(whileB.filter((m) => m.type === 'unsubscribe')).toEqual([]);
    b.close();
    // Closing and reopening in the same tick (React StrictMode) changes nothing on the wire.
    c.job('j2').close();
    await conn.next('unsubscribe');
    const all = await sentBefore(c, conn, 'sentinel-2');
    expect(all.filter((m) => !isSentinel(m)).map((m) => m.type)).toEqual(['subscribe', 'unsubscribe']);
  });
});
