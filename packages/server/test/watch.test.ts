/**
 * `headway watch` against a real hub, in-process with captured output: exit
 * codes from the job's outcome, one line per change in a pipe, redraws on a
 * terminal, a user's jobs, credentials and usage errors.
 */
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { startHub, type TestHub, waitFor } from '@headway/test-helpers';
import { afterEach, describe, expect, it } from 'vitest';
import { jobLine, shortDuration, timeLeft, WatchExit, type WatchIo, watch } from '../src/commands/watch.js';

const hubs: TestHub[] = [];
const dirs: string[] = [];
let n = 0;
const uid = (prefix = 'watch') => `${prefix}-${process.pid}-${++n}`;

afterEach(async () => {
  await Promise.all(hubs.splice(0).map((h) => h.close()));
  for (const dir of dirs.splice(0)) rmSync(dir, { recursive: true, force: true });
});

async function hubWith(): Promise<TestHub> {
  const hub = await startHub();
  hubs.push(hub);
  return hub;
}

interface Captured extends WatchIo {
  out: string;
  err: string;
  abort(): void;
}

function io(tty = false): Captured {
  const controller = new AbortController();
  const captured: Captured = {
    out: '',
    err: '',
    stdout: { write: (chunk: string) => (captured.out += chunk), isTTY: tty, columns: 100 },
    stderr: { write: (chunk: string) => (captured.err += chunk) },
    signal: controller.signal,
    abort: () => controller.abort(),
  };
  return captured;
}

function env(hub: TestHub, extra: Record<string, string> = {}): NodeJS.ProcessEnv {
  return { HEADWAY_URL: hub.url, HEADWAY_API_KEY: hub.apiKey, ...extra };
}

/** A hub with a new job of alice's, and `headway watch <job>` following it once it has printed the job. */
async function watchNewJob() {
  const hub = await hubWith();
  const job = uid();
  await hub.server.hub.createJob({ id: job, owner: 'alice', name: job });
  const out = io();
  const exit = watch([job], env(hub), out);
  await waitFor(() => out.out.includes('queued'), "out.out.includes('queued')", 10_000);
  return { hub, job, out, exit };
}

describe('headway watch <job>', () => {
  it('prints a line per change and exits 0 when the job completes', async () => {
    const hub = await hubWith();
    const job = uid();
    await hub.server.hub.createJob({
      id: job,
      owner: 'alice',
      name: 'Transcode',
      stages: [{ name: 'download' }, { name: 'encode' }],
    });
    const out = io();
    const exit = watch([job], env(hub), out);
    await waitFor(() => out.out.includes('queued'), "out.out.includes('queued')", 10_000);
    await hub.server.hub.publish(job, [{ kind: 'stage', name: 'download' }]);
    await hub.server.hub.publish(job, [{ kind: 'progress', percent: 50, message: 'fetching' }]);
    await waitFor(() => out.out.includes('fetching'), "out.out.includes('fetching')", 10_000);
    await hub.server.hub.publish(job, [{ kind: 'stage', name: 'encode' }, { kind: 'completed' }]);
    expect(await exit).toBe(WatchExit.COMPLETED);
    const lines = out.out.trim().split('\n');
    expect(lines[0]).toMatch(new RegExp(`^${job} Transcode\\s+0\\.0%\\s+queued$`));
    // An estimate from the running time appears once the job has run for one rate sample (250 ms),
    // which the first report may or may not have reached.
    expect(lines).toContainEqual(
      expect.stringMatching(/25%\s+download 1\/2\s+(.+ left\s+)?running\s+fetching$/),
    );
    expect(lines.at(-1)).toMatch(/100%\s+encode 2\/2\s+completed/);
    expect(out.out).not.toContain('\x1b');
  });

  it.each([
    ['failed', { kind: 'failed', error: { code: 'DISK_FULL', message: 'no space left' } }, WatchExit.FAILED],
    ['cancelled', { kind: 'cancelled', reason: 'stop' }, WatchExit.CANCELLED],
  ] as const)('exits with the code for %s', async (_status, event, code) => {
    const { hub, job, out, exit } = await watchNewJob();
    await hub.server.hub.publish(job, [{ kind: 'progress', percent: 10 }, event]);
    expect(await exit).toBe(code);
    if (code === WatchExit.FAILED) expect(out.out).toContain('DISK_FULL: no space left');
  });

  it('exits at once with the outcome of a job that already ended', async () => {
    const hub = await hubWith();
    const job = uid();
    await hub.server.hub.createJob({ id: job, owner: 'alice', name: job });
    await hub.server.hub.publish(job, [{ kind: 'completed' }]);
    expect(await watch([job], env(hub), io())).toBe(WatchExit.COMPLETED);
  });

  it('exits 4 for a job that does not exist, or is not visible with the token', async () => {
    const hub = await hubWith();
    const theirs = uid();
    await hub.server.hub.createJob({ id: theirs, owner: 'bob', name: theirs });
    const missing = io();
    expect(await watch([uid('missing')], env(hub), missing)).toBe(WatchExit.NOT_FOUND);
    expect(missing.err).toContain('HW_ERR_NOT_FOUND');
    const hidden = io();
    expect(
      await watch([theirs], { HEADWAY_URL: hub.url, HEADWAY_TOKEN: await hub.token('alice') }, hidden),
    ).toBe(WatchExit.NOT_FOUND);
  });

  it('exits 4 when the job is deleted while watched', async () => {
    const { hub, job, exit } = await watchNewJob();
    await hub.server.hub.deleteJob(job);
    expect(await exit).toBe(WatchExit.NOT_FOUND);
  });

  it('exits 5 when the hub refuses a fixed token', async () => {
    const hub = await hubWith();
    const out = io();
    const code = await watch(['any'], { HEADWAY_URL: hub.url, HEADWAY_TOKEN: 'not-a-valid-token' }, out);
    expect(code).toBe(WatchExit.REFUSED);
    expect(out.err).toBe('headway watch: invalid token (from HEADWAY_TOKEN)\n');
  });

  it('exits 130 when interrupted', async () => {
    const { out, exit } = await watchNewJob();
    out.abort();
    expect(await exit).toBe(WatchExit.INTERRUPTED);
  });

  it('redraws bars in place on a terminal', async () => {
    const hub = await hubWith();
    const job = uid();
    await hub.server.hub.createJob({ id: job, owner: 'alice', name: job });
    const out = io(true);
    const exit = watch([job], env(hub), out);
    await waitFor(() => out.out.includes('connected (ws)'), "out.out.includes('connected (ws)')", 10_000);
    for (const percent of [20, 60]) {
      await hub.server.hub.publish(job, [{ kind: 'progress', percent }]);
      await new Promise((r) => setTimeout(r, 150));
    }
    await hub.server.hub.publish(job, [{ kind: 'completed' }]);
    expect(await exit).toBe(WatchExit.COMPLETED);
    // Cursor up over the previous frame, erase, draw.
    expect(out.out).toContain('\x1b[2F');
    expect(out.out).toContain('\x1b[J');
    // biome-ignore lint/suspicious/noControlCharactersInRegex: stripping ANSI sequences.
    const plain = out.out.replace(/\x1b\[[0-9;]*m/g, '');
    // 100 columns leave 30 for the bar.
    expect(plain).toMatch(/\[█{18}░{12}\]\s+60%/);
    expect(plain).toMatch(/\[█{30}\]\s+100%\s+completed/);
    for (const line of out.out.split('\n')) {
      // biome-ignore lint/suspicious/noControlCharactersInRegex: stripping ANSI sequences.
      expect(line.replace(/\x1b\[[0-9;]*[A-Za-z]/g, '').length).toBeLessThanOrEqual(100);
    }
  });
});

describe('headway watch --user', () => {
  it("shows a user's jobs, new ones included, with a token minted from the API key", async () => {
    const hub = await hubWith();
    const first = uid();
    await hub.server.hub.createJob({ id: first, owner: 'alice', name: 'first' });
    await hub.server.hub.createJob({ id: uid('bob'), owner: 'bob', name: 'not alice' });
    const out = io();
    const exit = watch(['--user', 'alice'], env(hub), out);
    await waitFor(() => out.out.includes(first), 'out.out.includes(first)', 10_000);
    const second = uid();
    await hub.server.hub.createJob({ id: second, owner: 'alice', name: 'second' });
    await hub.server.hub.publish(second, [{ kind: 'progress', percent: 70 }]);
    await waitFor(() => /70%\s+running/.test(out.out), '/70%\\s+running/.test(out.out)', 10_000);
    out.abort();
    expect(await exit).toBe(WatchExit.INTERRUPTED);
    expect(out.out).toContain(`${second} second`);
    expect(out.out).not.toContain('not alice');
    expect(out.err).toContain('connected (ws)');
  });

  it('uses the API key of a development hub from its secrets.json', async () => {
    const hub = await hubWith();
    const dir = mkdtempSync(join(tmpdir(), 'headway-watch-'));
    dirs.push(dir);
    writeFileSync(join(dir, 'secrets.json'), JSON.stringify({ jwtSecret: 'x', apiKey: hub.apiKey }));
    const job = uid();
    await hub.server.hub.createJob({ id: job, owner: 'alice', name: job });
    await hub.server.hub.publish(job, [{ kind: 'completed' }]);
    expect(await watch([job, '--data-dir', dir], { HEADWAY_URL: hub.url }, io())).toBe(WatchExit.COMPLETED);
  });

  it('refuses a token of another user', async () => {
    const hub = await hubWith();
    const out = io();
    const code = await watch(
      ['--user', 'bob'],
      { HEADWAY_URL: hub.url, HEADWAY_TOKEN: await hub.token('alice') },
      out,
    );
    expect(code).toBe(WatchExit.USAGE);
    expect(out.err).toContain('"alice"');
  });

  it('follows over long-poll too', async () => {
    const hub = await hubWith();
    const job = uid();
    await hub.server.hub.createJob({ id: job, owner: 'alice', name: job });
    const out = io();
    const exit = watch(['--transport', 'poll', job], env(hub), out);
    await waitFor(() => out.err.includes('connected (poll)'), "out.err.includes('connected (poll)')", 10_000);
    await hub.server.hub.publish(job, [{ kind: 'progress', percent: 30 }]);
    await hub.server.hub.publish(job, [{ kind: 'completed' }]);
    expect(await exit).toBe(WatchExit.COMPLETED);
  });
});

describe('usage', () => {
  it.each([
    [[]],
    [['a', 'b']],
    [['a', '--user', 'alice']],
    [['--user']],
    [['--colour', 'a']],
    [['--transport', 'carrier-pigeon', 'a']],
    [['bad id']],
  ])('refuses %j with exit 2', async (argv) => {
    const out = io();
    expect(await watch(argv, {}, out)).toBe(WatchExit.USAGE);
    expect(out.err).toMatch(/^headway watch: /);
  });

  it('asks for credentials when there are none', async () => {
    const out = io();
    expect(await watch(['a', '--data-dir', join(tmpdir(), uid('nowhere'))], {}, out)).toBe(WatchExit.USAGE);
    expect(out.err).toContain('HEADWAY_TOKEN');
  });

  it('prints its help', async () => {
    const out = io();
    expect(await watch(['--help'], {}, out)).toBe(0);
    expect(out.out).toContain('Usage: headway watch <job-id>');
  });
});

describe('formatting', () => {
  it('writes durations for narrow terminals', () => {
    expect([5, 65, 3599, 3780].map(shortDuration)).toEqual(['5s', '1m05s', '59m59s', '1h03m']);
  });

  it('writes time left as the interval the hub gives', () => {
    const eta = { seconds: 170, confidence: 0.8, rate: 1, unit: 'percent' };
    expect(timeLeft(eta)).toBe('2m50s left');
    expect(timeLeft({ ...eta, low: 120, high: 240 })).toBe('about 2–4 min left');
    expect(timeLeft({ ...eta, low: 20, high: 150 })).toBe('under 3 min left');
    expect(timeLeft({ ...eta, low: 10, high: 40 })).toBe('under 1 min left');
    expect(timeLeft({ ...eta, low: 3600, high: 9000 })).toBe('about 1h00m–2h30m left');
  });

  it('shows a stall instead of the time left, and a paused estimate', () => {
    const base = {
      id: 'j',
      name: 'j',
      status: 'running',
      progress: { percent: 40 },
      stage: null,
      eta: { seconds: 170, confidence: 0.3, rate: 1, unit: 'percent', low: 120, high: 240 },
      message: null,
      error: null,
    };
    const options = { bar: 0, color: false, width: 0 };
    const stalled = jobLine({ ...base, stalled: { since: '2026-01-01T10:20:30.000Z' } } as never, options);
    expect(stalled).toContain('STALLED since 10:20:30Z');
    expect(stalled).not.toContain('left');
    expect(jobLine({ ...base, status: 'paused' } as never, options)).toContain('about 2–4 min left');
  });

  it('cuts long lines to the terminal width', () => {
    const line = jobLine(
      {
        id: 'j',
        name: 'x'.repeat(200),
        status: 'running',
        progress: { percent: 5 },
        stage: null,
        eta: null,
        message: null,
        error: null,
      } as never,
      { bar: 10, color: true, width: 50 },
    );
    // biome-ignore lint/suspicious/noControlCharactersInRegex: stripping ANSI sequences.
    expect(line.replace(/\x1b\[[0-9;]*m/g, '')).toHaveLength(50);
  });
});
