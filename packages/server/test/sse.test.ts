import {
  CloseCode,
  ErrorCode,
  type EventMessage,
  PROTOCOL_VERSION,
  type ServerMessage,
  type SubscribedMessage,
} from '@headway/protocol';
import { receivedBefore, startHub, type TestHub, waitFor } from '@headway/test-helpers';
import { afterEach, describe, expect, it } from 'vitest';
import type { CreateServerOptions } from '../src/server.js';
import { formatStreamId, parseStreamId } from '../src/transports/sse.js';

const hubs: TestHub[] = [];
const streams: SseReader[] = [];
let n = 0;
const uid = (prefix = 'sse') => `${prefix}-${process.pid}-${++n}`;

afterEach(async () => {
  for (const s of streams.splice(0)) s.abort();
  await Promise.all(hubs.splice(0).map((h) => h.close()));
});

async function hubWith(options: CreateServerOptions = {}): Promise<TestHub> {
  const hub = await startHub(options);
  hubs.push(hub);
  return hub;
}

/** One parsed SSE frame. */
interface Frame {
  event: string;
  id: string | undefined;
  data: string;
  comments: string[];
}

/** A streaming SSE response, parsed frame by frame as it arrives. */
interface SseReader {
  status: number;
  headers: Headers;
  frames: Frame[];
  /** Resolves when the server ends the stream. */
  ended: Promise<void>;
  /** The first frame not yet taken that matches, waiting up to `ms`. */
  next(match: (f: Frame) => boolean, ms?: number): Promise<Frame>;
  /** The next unnamed frame's message of this type. */
  message<T extends ServerMessage['type']>(
    type: T,
    ms?: number,
  ): Promise<Extract<ServerMessage, { type: T }> & { $id: string | undefined }>;
  abort(): void;
}

async function openStream(url: string, headers: Record<string, string> = {}): Promise<SseReader> {
  const controller = new AbortController();
  const res = await fetch(url, { headers, signal: controller.signal });
  const frames: Frame[] = [];
  const taken = new Set<Frame>();
  const waiters = new Set<() => void>();
  const wake = () => {
    for (const w of [...waiters]) w();
  };
  let done = false;
  const ended = (async () => {
    if (!res.body || !res.headers.get('content-type')?.startsWith('text/event-stream')) {
      done = true;
      return;
    }
    const decoder = new TextDecoder();
    let buffer = '';
    try {
      for await (const chunk of res.body as unknown as AsyncIterable<Uint8Array>) {
        buffer += decoder.decode(chunk, { stream: true });
        let end = buffer.indexOf('\n\n');
        while (end >= 0) {
          const block = buffer.slice(0, end);
          buffer = buffer.slice(end + 2);
          const frame: Frame = { event: 'message', id: undefined, data: '', comments: [] };
          const data: string[] = [];
          for (const line of block.split('\n')) {
            if (line.startsWith(':')) frame.comments.push(line.slice(1).trim());
            else if (line.startsWith('data:')) data.push(line.slice(5).replace(/^ /, ''));
            else if (line.startsWith('event:')) frame.event = line.slice(6).trim();
            else if (line.startsWith('id:')) frame.id = line.slice(3).replace(/^ /, '');
          }
          frame.data = data.join('\n');
          frames.push(frame);
          end = buffer.indexOf('\n\n');
        }
        wake();
      }
    } catch {
      // Aborted by the test.
    } finally {
      done = true;
      wake();
    }
  })();
  const reader: SseReader = {
    status: res.status,
    headers: res.headers,
    frames,
    ended,
    next(match, ms = 5000) {
      return new Promise((resolve, reject) => {
        const check = () => {
          const found = frames.find((f) => !taken.has(f) && match(f));
          if (found) {
            taken.add(found);
            finish();
            resolve(found);
          } else if (done) {
            finish();
            reject(new Error('stream ended'));
          }
        };
        const timer = setTimeout(() => {
          finish();
          reject(new Error(`no matching frame within ${ms} ms`));
        }, ms);
        const finish = () => {
          clearTimeout(timer);
          waiters.delete(check);
        };
        waiters.add(check);
        check();
      });
    },
    async message(type, ms) {
      const frame = await reader.next(
        (f) => f.event === 'message' && (JSON.parse(f.data) as ServerMessage).type === type,
        ms,
      );
      return { ...JSON.parse(frame.data), $id: frame.id };
    },
    abort() {
      controller.abort();
    },
  };
  streams.push(reader);
  return reader;
}

async function createJob(hub: TestHub, owner = 'alice', id = uid()): Promise<string> {
  await hub.server.hub.createJob({ id, owner, name: id });
  return id;
}

function progress(hub: TestHub, job: string, percent: number) {
  return hub.server.hub.publish(job, [{ kind: 'progress', percent }]);
}

function events(reader: SseReader, job?: string): (EventMessage & { $id: string | undefined })[] {
  return reader.frames
    .filter((f) => f.event === 'message')
    .map((f) => ({ ...(JSON.parse(f.data) as EventMessage), $id: f.id }))
    .filter((m) => m.type === 'event' && (job === undefined || m.job === job));
}

describe('resume ids', () => {
  it('parses and formats <jobId>:<seq> entries, job ids with colons included', () => {
    const map = parseStreamId('a:1,video.2:seg:17, b-3:0');
    expect([...map]).toEqual([
      ['a', 1],
      ['video.2:seg', 17],
      ['b-3', 0],
    ]);
    expect(formatStreamId(map)).toBe('a:1,video.2:seg:17,b-3:0');
    expect(parseStreamId('').size).toBe(0);
  });

  it.each(['a', 'a:', ':3', 'a:1x', 'a b:1', 'a:-1'])('refuses %j', (text) => {
    expect(() => parseStreamId(text)).toThrow(expect.objectContaining({ code: ErrorCode.INVALID_MESSAGE }));
  });
});

describe('GET /v1/stream', () => {
  it('streams welcome, the snapshot and live events of one job, with job:seq ids', async () => {
    const hub = await hubWith();
    const job = await createJob(hub);
    await progress(hub, job, 10);
    const s = await openStream(`${hub.url}/v1/stream?job=${job}&token=${await hub.token('alice')}`);
    expect(s.status).toBe(200);
    expect(s.headers.get('content-type')).toMatch(/^text\/event-stream/);
    expect(s.headers.get('cache-control')).toContain('no-cache');
    const welcome = await s.message('welcome');
    expect(welcome).toMatchObject({ version: PROTOCOL_VERSION, user: 'alice' });
    const subscribed = await s.message('subscribed');
    expect(subscribed.jobs.map((j) => [j.id, j.seq])).toEqual([[job, 2]]);
    expect(subscribed.$id).toBe(`${job}:2`);
    await progress(hub, job, 20);
    await hub.server.hub.publish(job, [{ kind: 'completed' }]);
    const ev = await s.message('event');
    expect(ev).toMatchObject({ job, seq: 3, kind: 'progress' });
    expect(ev.$id).toBe(`${job}:3`);
    expect(ev.state.progress.percent).toBe(20);
    const done = await s.message('event');
    expect(done).toMatchObject({ seq: 4, kind: 'completed' });
    expect(done.$id).toBe(`${job}:4`);
  });

  it('resumes from Last-Event-ID with exactly the missed events', async () => {
    const hub = await hubWith();
    const job = await createJob(hub);
    for (let p = 1; p <= 5; p++) await progress(hub, job, p * 10);
    const token = await hub.token('alice');
    const s = await openStream(`${hub.url}/v1/stream?job=${job}&token=${token}`, {
      'last-event-id': `${job}:3`,
    });
    const subscribed = await s.message('subscribed');
    expect(subscribed.recovered).toBe(true);
    expect(subscribed.events.map((e) => e.seq)).toEqual([4, 5, 6]);
    expect(subscribed.$id).toBe(`${job}:6`);
  });

  it('prefers Last-Event-ID over ?since (EventSource reconnects to its first URL)', async () => {
    const hub = await hubWith();
    const job = await createJob(hub);
    for (let p = 1; p <= 3; p++) await progress(hub, job, p * 10);
    const token = await hub.token('alice');
    const s = await openStream(`${hub.url}/v1/stream?job=${job}&since=${job}:1&token=${token}`, {
      'last-event-id': `${job}:3`,
    });
    const subscribed = await s.message('subscribed');
    expect(subscribed.events.map((e) => e.seq)).toEqual([4]);
  });

  it('answers recovered:false with the state when the gap is past the replay limit', async () => {
    const hub = await hubWith({ limits: { replayLimit: 2 } });
    const job = await createJob(hub);
    for (let p = 1; p <= 5; p++) await progress(hub, job, p * 10);
    const s = await openStream(`${hub.url}/v1/stream?job=${job}&since=${job}:1`, {
      authorization: `Bearer ${await hub.token('alice')}`,
    });
    const subscribed = await s.message('subscribed');
    expect(subscribed.recovered).toBe(false);
    expect(subscribed.events).toEqual([]);
    expect(subscribed.jobs[0]!.seq).toBe(6);
  });

  it('takes the credential from the headway_token cookie', async () => {
    const hub = await hubWith();
    const job = await createJob(hub);
    const s = await openStream(`${hub.url}/v1/stream?job=${job}`, {
      cookie: `other=1; headway_token=${await hub.token('alice')}`,
    });
    expect((await s.message('welcome')).user).toBe('alice');
  });

  it("streams a user's jobs, new ones included, with a map of unfinished jobs as the id", async () => {
    const hub = await hubWith();
    const a = await createJob(hub);
    const b = await createJob(hub);
    await createJob(hub, 'bob');
    const s = await openStream(`${hub.url}/v1/stream?scope=user&token=${await hub.token('alice')}`);
    const subscribed = await s.message('subscribed');
    expect(subscribed.jobs.map((j) => j.id).sort()).toEqual([a, b].sort());
    expect(parseStreamId(subscribed.$id!)).toEqual(
      new Map([
        [a, 1],
        [b, 1],
      ]),
    );
    const c = await createJob(hub);
    await progress(hub, a, 50);
    await waitFor(() => events(s).length === 2);
    expect(events(s).map((e) => [e.job, e.seq])).toEqual([
      [c, 1],
      [a, 2],
    ]);
    expect(parseStreamId(events(s)[1]!.$id!)).toEqual(
      new Map([
        [b, 1],
        [c, 1],
        [a, 2],
      ]),
    );
    // A finished job leaves the id: there is nothing left to resume for it.
    await hub.server.hub.publish(b, [{ kind: 'completed' }]);
    await waitFor(() => events(s).length === 3);
    expect([...parseStreamId(events(s)[2]!.$id!).keys()].sort()).toEqual([a, c].sort());
  });

  it('resumes a scope stream from its id: missed events of every listed job', async () => {
    const hub = await hubWith();
    const a = await createJob(hub);
    const b = await createJob(hub);
    const token = await hub.token('alice');
    await progress(hub, a, 10);
    await progress(hub, b, 10);
    await progress(hub, a, 20);
    const s = await openStream(`${hub.url}/v1/stream?scope=user&token=${token}`, {
      'last-event-id': `${a}:1,${b}:1`,
    });
    const subscribed = await s.message('subscribed');
    expect(subscribed.recovered).toBe(true);
    expect(subscribed.events.map((e) => [e.job, e.seq])).toEqual([
      [a, 2],
      [a, 3],
      [b, 2],
    ]);
  });

  it('combines jobs and a scope, delivering each event once', async () => {
    const hub = await hubWith();
    const mine = await createJob(hub);
    const s = await openStream(
      `${hub.url}/v1/stream?job=${mine}&scope=user&token=${await hub.token('alice')}`,
    );
    await s.message('subscribed');
    await progress(hub, mine, 30);
    await progress(hub, mine, 40);
    // A sentinel event after them: a second copy of either would be on the stream before it.
    const before = await receivedBefore(
      () => events(s),
      (e) => e.seq === 4,
      () => progress(hub, mine, 50),
    );
    expect(before.map((e) => e.seq)).toEqual([2, 3]);
  });

  it('reports a job that is not visible as an error event and goes on with the others', async () => {
    const hub = await hubWith();
    const mine = await createJob(hub);
    const theirs = await createJob(hub, 'bob');
    const s = await openStream(
      `${hub.url}/v1/stream?job=${mine},${theirs},missing-${uid()}&token=${await hub.token('alice')}`,
    );
    const errors = [await s.message('error'), await s.message('error')];
    expect(errors.map((e) => e.code)).toEqual([ErrorCode.NOT_FOUND, ErrorCode.NOT_FOUND]);
    expect(errors[0]!.id).toBe(theirs);
    const subscribed = await s.message('subscribed');
    expect(subscribed.jobs.map((j) => j.id)).toEqual([mine]);
    await progress(hub, theirs, 50);
    await progress(hub, mine, 50);
    await waitFor(() => events(s).length === 1);
    expect(events(s)[0]!.job).toBe(mine);
  });

  it('opens a stream without jobs or scope: only the welcome, an empty snapshot and heartbeats', async () => {
    const hub = await hubWith({ limits: { heartbeatMs: 50 } });
    const s = await openStream(`${hub.url}/v1/stream?token=${await hub.token('alice')}`);
    await s.message('welcome');
    const subscribed = await s.message('subscribed');
    expect(subscribed).toMatchObject({ jobs: [], events: [] });
    await s.next((f) => f.event === 'ping');
  });

  it('writes comment heartbeats with a ping event every heartbeatMs', async () => {
    const hub = await hubWith({ limits: { heartbeatMs: 50 } });
    const job = await createJob(hub);
    const s = await openStream(`${hub.url}/v1/stream?job=${job}&token=${await hub.token('alice')}`);
    const ping = await s.next((f) => f.event === 'ping');
    expect(ping.comments).toEqual(['heartbeat']);
    await s.next((f) => f.event === 'ping');
  });

  it('closes with TOKEN_EXPIRED when the token expires while streaming', async () => {
    const hub = await hubWith({ limits: { heartbeatMs: 100 } });
    const job = await createJob(hub);
    const s = await openStream(
      // Expiry has whole-second resolution: 3 s leaves at least 2 s to open the stream.
      `${hub.url}/v1/stream?job=${job}&token=${await hub.token('alice', { ttl: 3 })}`,
    );
    const close = await s.next((f) => f.event === 'close', 8000);
    expect(JSON.parse(close.data)).toMatchObject({ code: CloseCode.TOKEN_EXPIRED });
    await s.ended;
  });

  it('closes every stream with SHUTDOWN when the hub stops', async () => {
    const hub = await hubWith();
    const job = await createJob(hub);
    const s = await openStream(`${hub.url}/v1/stream?job=${job}&token=${await hub.token('alice')}`);
    await s.message('subscribed');
    await hub.server.close();
    const close = await s.next((f) => f.event === 'close');
    expect(JSON.parse(close.data)).toMatchObject({ code: CloseCode.SHUTDOWN });
    await s.ended;
  });

  it("counts a stream as one of the user's connections and releases it on disconnect", async () => {
    const hub = await hubWith({ limits: { connectionsPerUser: 1 } });
    const job = await createJob(hub);
    const token = await hub.token('alice');
    const first = await openStream(`${hub.url}/v1/stream?job=${job}&token=${token}`);
    await first.message('subscribed');
    expect(hub.server.context.connections.count('alice')).toBe(1);
    const second = await hub.get<{ error: { code: string } }>(`/v1/stream?job=${job}`, token);
    expect(second.status).toBe(429);
    expect(second.body.error.code).toBe(ErrorCode.TOO_MANY_CONNECTIONS);
    first.abort();
    await waitFor(() => hub.server.context.connections.count('alice') === 0);
    const third = await openStream(`${hub.url}/v1/stream?job=${job}&token=${token}`);
    await third.message('subscribed');
  });

  it('closes a reader that falls past the hard limit with SLOW_READER', async () => {
    const hub = await hubWith({ limits: { outboxSoftBytes: 4096, outboxHardBytes: 16_384 } });
    const job = await createJob(hub);
    const s = await openStream(`${hub.url}/v1/stream?job=${job}&token=${await hub.token('alice')}`);
    await s.message('subscribed');
    // Logs never collapse: 600 KB queued in one tick is far past the hard limit.
    const big = 'x'.repeat(3000);
    await Promise.all(
      Array.from({ length: 200 }, () => hub.server.hub.publish(job, [{ kind: 'log', message: big }])),
    );
    await s.ended;
    // The close frame is sent when the socket still takes it; either way the stream ends.
    const close = s.frames.find((f) => f.event === 'close');
    if (close) expect(JSON.parse(close.data).code).toBe(CloseCode.SLOW_READER);
    const metric = await hub.server.context.metrics.slowReaderCloses.get();
    expect(metric.values[0]?.value).toBe(1);
    expect(hub.server.context.connections.count('alice')).toBe(0);
  });

  it.each([
    ['a bad job id', 'job=a%20b', 400, ErrorCode.INVALID_MESSAGE],
    ['a bad scope', 'scope=mine', 400, ErrorCode.INVALID_MESSAGE],
    ['an unknown parameter', 'job=a&jobs=b', 400, ErrorCode.INVALID_MESSAGE],
    ['a bad resume id', 'job=a&since=a', 400, ErrorCode.INVALID_MESSAGE],
    ['the all scope for a user', 'scope=all', 403, ErrorCode.FORBIDDEN],
  ])('refuses %s', async (_name, query, status, code) => {
    const hub = await hubWith();
    const res = await hub.get<{ error: { code: string } }>(`/v1/stream?${query}`, await hub.token('alice'));
    expect(res.status).toBe(status);
    expect(res.body.error.code).toBe(code);
  });

  it('refuses a missing or expired credential with 401 and its code', async () => {
    const hub = await hubWith();
    const missing = await hub.get<{ error: { code: string } }>('/v1/stream?job=a', null);
    expect(missing.status).toBe(401);
    expect(missing.body.error.code).toBe(ErrorCode.UNAUTHORIZED);
    const expired = await hub.get<{ error: { code: string } }>(
      '/v1/stream?job=a',
      await hub.token('alice', { ttl: -10 }),
    );
    expect(expired.status).toBe(401);
    expect(expired.body.error.code).toBe(ErrorCode.TOKEN_EXPIRED);
  });

  it('lets an API key stream everything, and admin tokens too', async () => {
    const hub = await hubWith();
    const job = await createJob(hub, 'carol');
    const s = await openStream(`${hub.url}/v1/stream?scope=all&token=${hub.apiKey}`);
    expect((await s.message('subscribed')).jobs.map((j) => j.id)).toContain(job);
    const admin = await openStream(
      `${hub.url}/v1/stream?scope=all&token=${await hub.token('root', { admin: true })}`,
    );
    expect((await admin.message('subscribed')).jobs.map((j) => j.id)).toContain(job);
  });

  it('refuses a page from an origin outside the allow-list', async () => {
    const hub = await hubWith({ production: false, allowedOrigins: ['https://app.example'] });
    const res = await fetch(`${hub.url}/v1/stream?job=a&token=${await hub.token('alice')}`, {
      headers: { origin: 'https://evil.example' },
    });
    expect(res.status).toBe(403);
    expect(((await res.json()) as { error: { code: string } }).error.code).toBe(ErrorCode.ORIGIN_NOT_ALLOWED);
  });

  it('sends CORS headers to an allowed origin', async () => {
    const hub = await hubWith({ allowedOrigins: ['https://app.example'] });
    const job = await createJob(hub);
    const s = await openStream(`${hub.url}/v1/stream?job=${job}&token=${await hub.token('alice')}`, {
      origin: 'https://app.example',
    });
    expect(s.headers.get('access-control-allow-origin')).toBe('https://app.example');
    const subscribed: SubscribedMessage = await s.message('subscribed');
    expect(subscribed.jobs).toHaveLength(1);
  });
});
