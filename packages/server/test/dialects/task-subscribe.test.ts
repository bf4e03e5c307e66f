/**
 * task-subscribe (seed 1): a client that behaves as the seed's
 * `ProgressWebSocketManager` — subscribe with the token on open, ping every 30 s,
 * reconnect after 1, 2, 4, 8, 16 s, then poll — against a real hub. The seed's
 * timings are scaled down (`TIME_SCALE`) so that the suite runs in seconds.
 */
import { createServer, type Server } from 'node:http';
import { ErrorCode } from '@headway/protocol';
import { startHub, type TestHub, waitFor } from '@headway/test-helpers';
import { afterEach, describe, expect, it } from 'vitest';
import WebSocket from 'ws';
import { createJob, portOf, report, uniqueId, wsBase } from './helpers.js';

/** The seed's 30 s heartbeat and 2 s polling become 300 ms and 20 ms. */
const TIME_SCALE = 0.01;
/** The seed's 1 s … 16 s reconnect delays become 100 ms … 1.6 s, time enough for a hub restart. */
const RECONNECT_SCALE = 0.1;

interface ServerMessage {
  type: string;
  taskId?: string;
  // biome-ignore lint/suspicious/noExplicitAny: payloads are checked by the assertions.
  payload?: any;
  timestamp?: unknown;
}

/**
 * The seed's frontend manager: the same URL, messages, heartbeat, reconnect
 * schedule and polling fallback. Domain events it would publish on its event bus
 * are collected in `events`.
 */
class ProgressWebSocketManager {
  private ws: WebSocket | null = null;
  private reconnectAttempts = 0;
  private readonly maxReconnectAttempts = 5;
  private reconnectDelay: number;
  private heartbeatInterval: NodeJS.Timeout | null = null;
  private readonly timers = new Set<NodeJS.Timeout>();
  private disposed = false;
  readonly events: ServerMessage[] = [];
  readonly pongs: ServerMessage[] = [];
  readonly pingsSent: number[] = [];
  readonly closeCodes: number[] = [];
  readonly reconnectDelays: number[] = [];
  readonly polls: Record<string, unknown>[] = [];
  opens = 0;
  pollingStarted = false;

  constructor(
    private readonly url: (taskId: string) => string,
    private readonly pollUrl: (taskId: string) => string,
    private readonly reconnectScale: number,
  ) {
    this.reconnectDelay = 1000 * reconnectScale;
  }

  connect(taskId: string, token: string): void {
    if (this.disposed) return;
    this.ws = new WebSocket(this.url(taskId));
    this.ws.onopen = () => {
      this.opens++;
      this.reconnectAttempts = 0;
      this.reconnectDelay = 1000 * this.reconnectScale;
      this.send({ type: 'subscribe', taskId, token });
      this.startHeartbeat();
    };
    this.ws.onmessage = (event) => this.handleMessage(JSON.parse(String(event.data)) as ServerMessage);
    this.ws.onclose = (event) => {
      this.closeCodes.push(event.code);
      this.stopHeartbeat();
      this.attemptReconnect(taskId, token);
    };
    this.ws.onerror = () => {};
  }

  send(message: unknown): void {
    if (this.ws?.readyState === WebSocket.OPEN) this.ws.send(JSON.stringify(message));
  }

  private handleMessage(message: ServerMessage): void {
    switch (message.type) {
      case 'progress_update':
      case 'stage_change':
      case 'time_estimate':
      case 'complete':
      case 'error':
        this.events.push(message);
        break;
      case 'pong':
        this.pongs.push(message);
        break;
    }
  }

  private startHeartbeat(): void {
    this.heartbeatInterval = setInterval(() => {
      const timestamp = Date.now();
      this.pingsSent.push(timestamp);
      this.send({ type: 'ping', timestamp });
    }, 30000 * TIME_SCALE);
  }

  private stopHeartbeat(): void {
    if (this.heartbeatInterval) clearInterval(this.heartbeatInterval);
    this.heartbeatInterval = null;
  }

  private attemptReconnect(taskId: string, token: string): void {
    if (this.disposed) return;
    if (this.reconnectAttempts >= this.maxReconnectAttempts) {
      this.fallbackToPolling(taskId, token);
      return;
    }
    this.reconnectAttempts++;
    const delay = this.reconnectDelay * 2 ** (this.reconnectAttempts - 1);
    this.reconnectDelays.push(delay);
    this.later(() => this.connect(taskId, token), delay);
  }

  /** The seed's polling service: every 2 s until the task has ended. */
  private fallbackToPolling(taskId: string, token: string): void {
    this.pollingStarted = true;
    const poll = async () => {
      if (this.disposed) return;
      const res = await fetch(this.pollUrl(taskId), { headers: { authorization: `Bearer ${token}` } });
      const body = (await res.json()) as Record<string, unknown>;
      this.polls.push({ httpStatus: res.status, ...body });
      if (res.ok && !['completed', 'failed', 'cancelled'].includes(String(body.status))) {
        this.later(poll, 2000 * TIME_SCALE);
      }
    };
    void poll();
  }

  private later(fn: () => void, ms: number): void {
    const timer = setTimeout(() => {
      this.timers.delete(timer);
      fn();
    }, ms);
    this.timers.add(timer);
  }

  /** The seed's `disconnect`. */
  disconnect(): void {
    this.stopHeartbeat();
    if (this.ws) {
      this.ws.close();
      this.ws = null;
    }
  }

  /** Test cleanup: disconnect without the reconnect the seed's `onclose` would start. */
  dispose(): void {
    this.disposed = true;
    for (const t of this.timers) clearTimeout(t);
    this.timers.clear();
    this.disconnect();
  }

  /** Events of one type, in order. */
  of(type: string): ServerMessage[] {
    return this.events.filter((e) => e.type === type);
  }
}

describe('task-subscribe (seed 1)', () => {
  let hub: TestHub;
  const managers: ProgressWebSocketManager[] = [];
  const servers: Server[] = [];

  afterEach(async () => {
    for (const m of managers.splice(0)) m.dispose();
    for (const s of servers.splice(0)) await new Promise((resolve) => s.close(resolve));
    await hub?.close();
  });

  const manager = (
    url = (id: string) => `${wsBase(hub)}/ws/progress/${id}`,
    reconnectScale = RECONNECT_SCALE,
  ) => {
    const m = new ProgressWebSocketManager(url, (id) => `${hub.url}/api/progress/${id}`, reconnectScale);
    managers.push(m);
    return m;
  };

  it('follows a task: current state, progress in bytes, estimates, a stage change, heartbeats, a reconnect, completion', async () => {
    hub = await startHub();
    const task = uniqueId('stt');
    await createJob(hub, {
      id: task,
      owner: 'alice',
      stages: [{ name: 'upload' }, { name: 'transcription', weight: 3 }],
    });
    const token = await hub.token('alice');
    const client = manager();
    client.connect(task, token);

    // The current state comes at once on subscribe.
    const first = await waitFor(() => client.of('progress_update')[0], 'the current state');
    expect(first).toMatchObject({ taskId: task, payload: { percentage: 0, stage: 'queued' } });
    expect(typeof first.payload.timestamp).toBe('string');

    const MiB = 1024 * 1024;
    await report(hub, task, { kind: 'stage', name: 'upload' });
    await report(hub, task, { kind: 'progress', current: 10 * MiB, total: 100 * MiB, unit: 'bytes' });
    await new Promise((resolve) => setTimeout(resolve, 300)); // two samples apart: an estimate
    await report(hub, task, { kind: 'progress', current: 40 * MiB, unit: 'bytes' });
    const bytes = await waitFor(
      () => client.of('progress_update').find((e) => e.payload.bytesProcessed === 40 * MiB),
      'a progress update in bytes',
    );
    expect(bytes.payload).toMatchObject({ bytesTotal: 100 * MiB, stage: 'upload', percentage: 10 });
    expect(bytes.payload.processingSpeed).toBeGreaterThan(0);
    const estimate = await waitFor(() => client.of('time_estimate').at(-1), 'a time estimate');
    expect(estimate.taskId).toBe(task);
    expect(Number.isInteger(estimate.payload.estimatedTimeRemaining)).toBe(true);
    expect(estimate.payload.confidence).toBeGreaterThan(0);
    expect(estimate.payload.confidence).toBeLessThanOrEqual(1);

    await report(hub, task, { kind: 'stage', name: 'transcription' });
    const change = await waitFor(
      () => client.of('stage_change').find((e) => e.payload.toStage === 'transcription'),
      'a stage change',
    );
    expect(change.payload.fromStage).toBe('upload');
    // The first stage was entered from the queue.
    expect(client.of('stage_change')[0]!.payload).toMatchObject({ fromStage: 'queued', toStage: 'upload' });
    expect(typeof change.payload.timestamp).toBe('string');

    // The heartbeat: each ping is answered with its timestamp.
    const pong = await waitFor(() => client.pongs[0], 'a pong');
    expect(client.pingsSent).toContain(pong.timestamp);

    // The hub restarts: the client reconnects after 1 s (scaled), subscribes again
    // and gets the state it missed.
    hub = await hub.restart({ port: portOf(hub) });
    await report(hub, task, { kind: 'progress', percent: 50 });
    await waitFor(() => client.opens === 2, 'the reconnect');
    expect(client.reconnectDelays[0]).toBe(1000 * RECONNECT_SCALE);
    await waitFor(
      () =>
        client
          .of('progress_update')
          .find((e) => e.payload.stage === 'transcription' && e.payload.percentage > 60),
      'the state after the reconnect',
    );

    await report(hub, task, {
      kind: 'completed',
      result: { resultUrl: `https://stt.example.com/results/${task}.txt`, duration: 42 },
    });
    const complete = await waitFor(() => client.of('complete')[0], 'the completion');
    expect(complete).toEqual({
      type: 'complete',
      taskId: task,
      payload: { resultUrl: `https://stt.example.com/results/${task}.txt`, duration: 42 },
    });
  });

  it('reports a failure, answers get_state, and stops after unsubscribe', async () => {
    hub = await startHub();
    const task = uniqueId('stt');
    await createJob(hub, { id: task, owner: 'alice' });
    const client = manager();
    client.connect(task, await hub.token('alice'));
    await waitFor(() => client.of('progress_update')[0], 'the current state');

    await report(hub, task, { kind: 'progress', percent: 30, message: 'decoding' });
    await waitFor(() => client.of('progress_update').find((e) => e.payload.percentage === 30), 'progress');
    client.send({ type: 'get_state', taskId: task });
    await waitFor(
      () => client.of('progress_update').filter((e) => e.payload.percentage === 30).length === 2,
      'state',
    );

    await report(hub, task, {
      kind: 'failed',
      error: { code: 'GPU_OOM', message: 'out of GPU memory', retryable: true },
    });
    const error = await waitFor(() => client.of('error')[0], 'the failure');
    expect(error).toEqual({
      type: 'error',
      taskId: task,
      payload: { code: 'GPU_OOM', message: 'out of GPU memory' },
    });

    // After unsubscribe nothing more comes for the task: a later ping is answered
    // first (the answer queues behind anything already sent).
    const other = uniqueId('stt');
    await createJob(hub, { id: other, owner: 'alice' });
    client.send({ type: 'subscribe', taskId: other, token: await hub.token('alice') });
    await waitFor(() => client.of('progress_update').find((e) => e.taskId === other), 'the second task');
    client.send({ type: 'unsubscribe', taskId: other });
    client.send({ type: 'ping', timestamp: 1 });
    await waitFor(() => client.pongs.find((p) => p.timestamp === 1), 'the pong');
    await report(hub, other, { kind: 'progress', percent: 10 });
    client.send({ type: 'ping', timestamp: 2 });
    await waitFor(() => client.pongs.find((p) => p.timestamp === 2), 'the second pong');
    expect(client.of('progress_update').filter((e) => e.taskId === other)).toHaveLength(1);
  });

  it('refuses a wrong or expired token with an error and 1008; hides other users’ tasks', async () => {
    hub = await startHub({ limits: { authTimeoutMs: 300 } });
    const task = uniqueId('stt');
    await createJob(hub, { id: task, owner: 'alice' });

    const raw = (first: unknown) =>
      new Promise<{ messages: ServerMessage[]; code: number }>((resolve) => {
        const ws = new WebSocket(`${wsBase(hub)}/ws/progress/${task}`);
        const messages: ServerMessage[] = [];
        ws.on('open', () => {
          if (first !== undefined) ws.send(JSON.stringify(first));
        });
        ws.on('message', (d) => messages.push(JSON.parse(d.toString()) as ServerMessage));
        ws.on('close', (code) => resolve({ messages, code }));
      });

    const wrong = await raw({ type: 'subscribe', taskId: task, token: 'not-a-token' });
    expect(wrong.code).toBe(1008);
    expect(wrong.messages).toEqual([
      { type: 'error', taskId: task, payload: { code: ErrorCode.UNAUTHORIZED, message: expect.any(String) } },
    ]);
    const expired = await raw({
      type: 'subscribe',
      taskId: task,
      token: await hub.token('alice', { ttl: -10 }),
    });
    expect(expired.code).toBe(1008);
    expect(expired.messages[0]?.payload.code).toBe(ErrorCode.TOKEN_EXPIRED);
    // A client that never subscribes is closed after the authentication timeout.
    const silent = await raw(undefined);
    expect(silent.code).toBe(1008);
    expect(silent.messages[0]?.payload.code).toBe(ErrorCode.UNAUTHORIZED);

    // Bob's subscribe to alice's task is answered like one to a task that does not exist.
    const bob = manager();
    bob.connect(task, await hub.token('bob'));
    const hidden = await waitFor(() => bob.of('error')[0], 'the error');
    bob.send({ type: 'subscribe', taskId: 'no-such-task', token: await hub.token('bob') });
    const missing = await waitFor(() => bob.of('error')[1], 'the second error');
    expect(hidden.payload.code).toBe(ErrorCode.NOT_FOUND);
    expect(missing.payload.code).toBe(ErrorCode.NOT_FOUND);
    expect(bob.closeCodes).toEqual([]);
  });

  it('falls back to polling after five failed reconnects, as the seed does behind a firewall', async () => {
    hub = await startHub();
    const task = uniqueId('stt');
    await createJob(hub, { id: task, owner: 'alice' });
    // A proxy that refuses WebSocket upgrades while plain HTTP reaches the hub.
    const firewall = createServer((_req, res) => res.writeHead(404).end());
    firewall.on('upgrade', (_req, socket) =>
      socket.end('HTTP/1.1 403 Forbidden\r\nContent-Length: 0\r\n\r\n'),
    );
    servers.push(firewall);
    await new Promise<void>((resolve) => firewall.listen(0, '127.0.0.1', resolve));
    const { port } = firewall.address() as { port: number };

    const client = manager((id) => `ws://127.0.0.1:${port}/ws/progress/${id}`, TIME_SCALE);
    client.connect(task, await hub.token('alice'));
    await waitFor(() => client.pollingStarted, 'the polling fallback');
    expect(client.reconnectDelays).toEqual([1, 2, 4, 8, 16].map((s) => s * 1000 * TIME_SCALE));
    expect(client.opens).toBe(0);

    await waitFor(() => client.polls[0], 'a poll');
    expect(client.polls[0]).toMatchObject({
      httpStatus: 200,
      taskId: task,
      status: 'queued',
      payload: { percentage: 0, stage: 'queued' },
      timeEstimate: null,
      complete: null,
      error: null,
    });
    await report(hub, task, { kind: 'progress', percent: 60 });
    await waitFor(
      () => client.polls.find((p) => (p.payload as { percentage: number }).percentage === 60),
      'progress',
    );
    await report(hub, task, { kind: 'completed', result: 'https://stt.example.com/r.txt' });
    const done = await waitFor(() => client.polls.find((p) => p.status === 'completed'), 'completion');
    expect(done.complete).toMatchObject({ resultUrl: 'https://stt.example.com/r.txt' });

    // The polling endpoint needs a token, and hides other users' tasks.
    expect((await hub.get(`/api/progress/${task}`, null)).status).toBe(401);
    const bob = await hub.get<{ error: { code: string } }>(`/api/progress/${task}`, await hub.token('bob'));
    expect(bob.status).toBe(404);
    expect(bob.body.error.code).toBe(ErrorCode.NOT_FOUND);
  });
});
