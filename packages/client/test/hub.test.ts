/**
 * The client against a real hub, over each transport: hub restarts mid-job,
 * refused upgrades and streams, token expiry, offline/online. Every scenario
 * checks the one thing that matters: each event arrives once, in seq order.
 */

import { startHub, type TestHub, waitFor } from '@headway/test-helpers';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import WebSocket from 'ws';
import { createClient, type HeadwayClient } from '../src/client.js';
import type { JobHandle } from '../src/handles.js';
import type { ClientOptions, NetworkTarget, TransportKind } from '../src/types.js';
import { NodeEventSource, openSources } from './event-source.js';
import { startProxy, type TestProxy } from './proxy.js';

const transports: TransportKind[] = ['ws', 'sse', 'poll'];
/** The client asks for deltas; `full` strips that from its requests, so the hub sends whole states. */
const modes = ['delta', 'full'] as const;
type Mode = (typeof modes)[number];
let mode: Mode = 'delta';

/** The client's WebSocket, sending subscribe messages without `state` in full mode. */
class ModeWebSocket extends WebSocket {
  override send(data: string): void {
    if (mode === 'full' && data.includes('"subscribe"')) {
      const m = JSON.parse(data);
      delete m.state;
      data = JSON.stringify(m);
    }
    super.send(data);
  }
}

/** The client's EventSource, without `state=delta` in full mode. */
class ModeEventSource extends NodeEventSource {
  constructor(url: string) {
    super(mode === 'full' ? url.replace(/([?&])state=delta&?/, '$1') : url);
  }
}
/** Long-poll answers that were deltas (`{id, since, seq, patch}`). */
let deltaAnswers = 0;
/** The client's fetch, without `state=delta` in full mode; counts the delta answers. */
const modeFetch: typeof fetch = async (input, init) => {
  const url = String(input);
  const res = await fetch(mode === 'full' ? url.replace('&state=delta', '') : url, init);
  if (url.includes('state=delta') && res.ok && 'patch' in (await res.clone().json())) deltaAnswers++;
  return res;
};
const hubs: TestHub[] = [];
const clients: HeadwayClient[] = [];
const proxies: TestProxy[] = [];
let n = 0;
const uid = (prefix = 'job') => `${prefix}-${process.pid}-${++n}`;

afterEach(async () => {
  for (const c of clients.splice(0)) c.close();
  await Promise.all(proxies.splice(0).map((p) => p.close()));
  await Promise.all(hubs.splice(0).map((h) => h.close()));
  expect(openSources.size).toBe(0);
});

async function hubWith(options: Parameters<typeof startHub>[0] = {}): Promise<TestHub> {
  const hub = await startHub(options);
  hubs.push(hub);
  return hub;
}

/** Close the hub and start it again on the same data directory and port. */
async function restart(hub: TestHub, between?: () => Promise<void>): Promise<TestHub> {
  const port = Number(new URL(hub.url).port);
  hubs.splice(hubs.indexOf(hub), 1);
  await hub.server.close();
  await between?.();
  const next = await hub.restart({ port });
  hubs.push(next);
  return next;
}

function client(url: string, options: Partial<ClientOptions> = {}): HeadwayClient {
  const c = createClient({
    url,
    token: 'unset',
    WebSocket: ModeWebSocket as unknown as ClientOptions['WebSocket'],
    EventSource: ModeEventSource,
    fetch: modeFetch,
    shared: false,
    minReconnectDelayMs: 20,
    maxReconnectDelayMs: 200,
    pollIntervalMs: 50,
    longPollSeconds: 5,
    ...options,
  });
  clients.push(c);
  return c;
}

/** Seqs of every event a handle emits, and a check that they are exactly `from..to`. */
function record(h: JobHandle) {
  const seqs: number[] = [];
  h.on('event', ({ event, state }) => {
    seqs.push(event.seq);
    expect(state.id).toBe(h.id);
    expect(state.seq).toBeGreaterThanOrEqual(event.seq);
  });
  return seqs;
}

function range(from: number, to: number): number[] {
  return Array.from({ length: to - from + 1 }, (_, i) => from + i);
}

async function progress(hub: TestHub, job: string, count: number): Promise<void> {
  for (let i = 0; i < count; i++) {
    await hub.server.hub.publish(job, [{ kind: 'progress', percent: i % 100, message: `step ${i}` }]);
  }
}

describe.each(
  modes.flatMap((m) => transports.map((t) => [t, m] as const)),
)('over %s, %s state', (transport, m) => {
  beforeEach(() => {
    mode = m;
    deltaAnswers = 0;
  });

  it('resumes across a hub restart mid-job with no gap and no duplicate', async () => {
    let hub = await hubWith();
    const job = uid();
    await hub.server.hub.createJob({ id: job, owner: 'alice', name: job });
    // Reconnecting takes ~500 ms: the events reported after the restart are missed, then replayed.
    const c = client(hub.url, {
      token: await hub.token('alice'),
      transports: [transport],
      random: () => 0.99,
      minReconnectDelayMs: 500,
      maxReconnectDelayMs: 500,
    });
    const h = c.job(job);
    const seqs = record(h);
    await waitFor(() => h.state?.seq === 1, 'h.state?.seq === 1', 10_000);
    await progress(hub, job, 10);
    await waitFor(() => seqs.length === 10, 'seqs.length === 10', 10_000);
    // Down: the client loses its connection; events reported meanwhile must still arrive.
    hub = await restart(hub);
    await progress(hub, job, 10);
    await hub.server.hub.publish(job, [{ kind: 'log', message: 'log lines are never collapsed' }]);
    await progress(hub, job, 5);
    await hub.server.hub.publish(job, [{ kind: 'completed', result: { url: 'https://x/y' } }]);
    await waitFor(() => h.state?.status === 'completed', "h.state?.status === 'completed'", 10_000);
    expect(seqs).toEqual(range(2, 28));
    expect(h.state?.result).toEqual({ url: 'https://x/y' });
    // Folded patches end on the hub's state.
    expect(h.state).toEqual(await hub.server.hub.getJob(job));
    if (transport === 'poll') expect(deltaAnswers > 0).toBe(mode === 'delta');
    expect(c.state).toBe('connected');
    expect(c.transport).toBe(transport);
  });

  it("watches the user's jobs, new ones included, across a restart", async () => {
    let hub = await hubWith();
    const before = uid();
    await hub.server.hub.createJob({ id: before, owner: 'alice', name: before });
    await hub.server.hub.createJob({ id: uid('bob'), owner: 'bob', name: 'not alice' });
    const c = client(hub.url, { token: await hub.token('alice'), transports: [transport] });
    const jobs = c.jobs();
    const seen = new Map<string, number[]>();
    jobs.on('event', ({ event }) => seen.set(event.job, [...(seen.get(event.job) ?? []), event.seq]));
    await waitFor(() => jobs.size === 1, 'jobs.size === 1', 10_000);
    const added = uid();
    await hub.server.hub.createJob({ id: added, owner: 'alice', name: added });
    await waitFor(() => jobs.size === 2, 'jobs.size === 2', 10_000);
    await progress(hub, before, 3);
    await waitFor(() => seen.get(before)?.length === 3, 'seen.get(before)?.length === 3', 10_000);
    hub = await restart(hub);
    await progress(hub, added, 4);
    await progress(hub, before, 2);
    await waitFor(
      () => jobs.get(added)?.seq === 5 && jobs.get(before)?.seq === 6,
      'jobs.get(added)?.seq === 5 && jobs.get(before)?.seq === 6',
      10_000,
    );
    expect(seen.get(before)).toEqual(range(2, 6));
    // Over long-poll a new job is first seen as a state; over push transports, with its `created` event.
    expect(seen.get(added)).toEqual(transport === 'poll' ? range(2, 5) : range(1, 5));
    expect(jobs.list().map((s) => s.owner)).toEqual(['alice', 'alice']);
  });

  it('cancels through the hub and resolves with the acknowledged state', async () => {
    const hub = await hubWith();
    const job = uid();
    await hub.server.hub.createJob({ id: job, owner: 'alice', name: job });
    await hub.server.hub.publish(job, [{ kind: 'progress', percent: 5 }]);
    const c = client(hub.url, { token: await hub.token('alice'), transports: [transport] });
    const h = c.job(job);
    await waitFor(
      () => c.state === 'connected' && h.state !== null,
      "c.state === 'connected' && h.state !== null",
      10_000,
    );
    const state = await h.cancel('changed my mind');
    expect(state.control.cancelRequested).toBe(true);
    await waitFor(
      () => h.state?.control.cancelRequested === true,
      'h.state?.control.cancelRequested === true',
      10_000,
    );
    await expect(c.job(uid('missing')).pause()).rejects.toMatchObject({ code: 'HW_ERR_NOT_FOUND' });
  });

  it('refreshes an expiring token and goes on without losing an event', async () => {
    const hub = await hubWith({ limits: { heartbeatMs: 200 } });
    const job = uid();
    await hub.server.hub.createJob({ id: job, owner: 'alice', name: job });
    let calls = 0;
    // The first token has already expired: refused at once, then refreshed.
    const token = async () => hub.token('alice', { ttl: ++calls === 1 ? -5 : 2 });
    const c = client(hub.url, { token, transports: [transport] });
    const h = c.job(job);
    const seqs = record(h);
    await waitFor(() => h.state !== null, 'h.state !== null', 10_000);
    for (let i = 0; i < 12; i++) {
      await progress(hub, job, 1);
      await new Promise((r) => setTimeout(r, 250));
    }
    await waitFor(() => seqs.length === 12, 'seqs.length === 12', 10_000);
    expect(seqs).toEqual(range(2, 13));
    // Tokens of 2 s over 3 s of reporting: at least one refresh before expiry.
    expect(calls).toBeGreaterThanOrEqual(3);
  });
});

describe('transport fallback', () => {
  it('falls back to SSE when upgrades are refused, then returns to WebSocket', async () => {
    const hub = await hubWith();
    const proxy = await startProxy(hub.url);
    proxies.push(proxy);
    proxy.refuseUpgrades = true;
    const job = uid();
    await hub.server.hub.createJob({ id: job, owner: 'alice', name: job });
    const c = client(proxy.url, { token: await hub.token('alice'), upgradeIntervalMs: 200 });
    const changes: string[] = [];
    c.on('transport', ({ transport, previous }) => changes.push(`${previous}→${transport}`));
    const h = c.job(job);
    const seqs = record(h);
    await waitFor(
      () => c.transport === 'sse' && h.state !== null,
      "c.transport === 'sse' && h.state !== null",
      10_000,
    );
    await progress(hub, job, 5);
    await waitFor(() => seqs.length === 5, 'seqs.length === 5', 10_000);
    proxy.refuseUpgrades = false;
    await waitFor(() => c.transport === 'ws', "c.transport === 'ws'", 10_000);
    await progress(hub, job, 5);
    await waitFor(() => seqs.length === 10, 'seqs.length === 10', 10_000);
    expect(seqs).toEqual(range(2, 11));
    expect(changes).toEqual(['null→sse', 'sse→ws']);
    // The SSE stream was closed once the WebSocket took over.
    await waitFor(
      () => hub.server.context.connections.count('alice') === 1,
      "hub.server.context.connections.count('alice') === 1",
      10_000,
    );
  });

  it('falls back to long-poll when streams are refused too, then returns to WebSocket', async () => {
    const hub = await hubWith();
    const proxy = await startProxy(hub.url);
    proxies.push(proxy);
    proxy.refuseUpgrades = true;
    proxy.refuseStreams = true;
    const job = uid();
    await hub.server.hub.createJob({ id: job, owner: 'alice', name: job });
    const c = client(proxy.url, { token: await hub.token('alice'), upgradeIntervalMs: 300 });
    const h = c.job(job);
    const seqs = record(h);
    await waitFor(
      () => c.transport === 'poll' && h.state !== null,
      "c.transport === 'poll' && h.state !== null",
      10_000,
    );
    await progress(hub, job, 6);
    await waitFor(() => seqs.length === 6, 'seqs.length === 6', 10_000);
    proxy.refuseUpgrades = false;
    await waitFor(() => c.transport === 'ws', "c.transport === 'ws'", 10_000);
    await progress(hub, job, 3);
    await waitFor(() => seqs.length === 9, 'seqs.length === 9', 10_000);
    expect(seqs).toEqual(range(2, 10));
  });

  it('starts over from WebSocket when every transport failed', async () => {
    const hub = await hubWith();
    const proxy = await startProxy(hub.url);
    proxies.push(proxy);
    const job = uid();
    await hub.server.hub.createJob({ id: job, owner: 'alice', name: job });
    const c = client(proxy.url, { token: await hub.token('alice') });
    const h = c.job(job);
    const seqs = record(h);
    await waitFor(
      () => c.transport === 'ws' && h.state !== null,
      "c.transport === 'ws' && h.state !== null",
      10_000,
    );
    const upgrades = proxy.upgrades;
    proxy.drop();
    await progress(hub, job, 3);
    await waitFor(
      () => seqs.length === 3 && c.state === 'connected',
      "seqs.length === 3 && c.state === 'connected'",
      10_000,
    );
    expect(c.transport).toBe('ws');
    expect(proxy.upgrades).toBeGreaterThan(upgrades);
    expect(seqs).toEqual(range(2, 4));
  });
});

describe('offline and online', () => {
  it('drops the connection while offline and catches up exactly when back', async () => {
    const hub = await hubWith();
    const job = uid();
    await hub.server.hub.createJob({ id: job, owner: 'alice', name: job });
    const net = new EventTarget() as EventTarget & { onLine: boolean };
    net.onLine = true;
    const c = client(hub.url, {
      token: await hub.token('alice'),
      network: net as unknown as NetworkTarget,
      minReconnectDelayMs: 60_000,
      maxReconnectDelayMs: 60_000,
    });
    const h = c.job(job);
    const seqs = record(h);
    await waitFor(
      () => c.state === 'connected' && h.state !== null,
      "c.state === 'connected' && h.state !== null",
      10_000,
    );
    await progress(hub, job, 2);
    await waitFor(() => seqs.length === 2, 'seqs.length === 2', 10_000);
    net.onLine = false;
    net.dispatchEvent(new Event('offline'));
    expect(c.state).toBe('reconnecting');
    await waitFor(
      () => hub.server.context.connections.count('alice') === 0,
      "hub.server.context.connections.count('alice') === 0",
      10_000,
    );
    await progress(hub, job, 4);
    expect(seqs).toEqual([2, 3]);
    net.onLine = true;
    net.dispatchEvent(new Event('online'));
    await waitFor(() => seqs.length === 6, 'seqs.length === 6', 10_000);
    expect(seqs).toEqual(range(2, 7));
  });
});
