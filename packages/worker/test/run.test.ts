/**
 * `headway run` with real commands: small Node scripts that print progress
 * (ffmpeg's `-progress` output is simulated, not run), against a real hub.
 */
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { PassThrough } from 'node:stream';
import type { JobEvent, JobState } from '@headway/protocol';
import { startHub, type TestHub, waitFor } from '@headway/test-helpers';
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { parseRunArgs, run } from '../../server/src/commands/run.js';
import { type RunCommandOptions, runCommand } from '../src/index.js';

let hub: TestHub;
let dir: string;
const node = process.execPath;

/** Write a script into the temp dir; returns its path. */
function script(name: string, source: string): string {
  const path = join(dir, name);
  writeFileSync(path, source);
  return path;
}

/** A process's state letter from /proc (`T`: stopped by a signal). */
function processState(pid: number): string {
  const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
  return stat.slice(stat.lastIndexOf(')') + 2, stat.lastIndexOf(')') + 3);
}

const sleep = 'const sleep = (ms) => new Promise((r) => setTimeout(r, ms));\n';

beforeAll(() => {
  dir = mkdtempSync(join(tmpdir(), 'headway-run-'));
});
afterAll(() => {
  rmSync(dir, { recursive: true, force: true });
});
beforeEach(async () => {
  hub = await startHub();
});
afterEach(async () => {
  await hub.close();
});

function sink(): PassThrough & { text(): string } {
  const stream = new PassThrough();
  const chunks: string[] = [];
  stream.on('data', (c) => chunks.push(String(c)));
  return Object.assign(stream, { text: () => chunks.join('') });
}

function exec(options: Omit<RunCommandOptions, 'worker'>) {
  const stdout = sink();
  const stderr = sink();
  const result = runCommand({
    stdout,
    stderr,
    forwardSignals: false,
    ...options,
    worker: { url: hub.url, apiKey: hub.apiKey, onError: () => {} },
  });
  return { result, stdout, stderr };
}

async function events(id: string): Promise<JobEvent[]> {
  return (await hub.get<{ events: JobEvent[] }>(`/v1/jobs/${id}/events?since=0&limit=1000`)).body.events;
}
async function state(id: string): Promise<JobState> {
  return (await hub.get<JobState>(`/v1/jobs/${id}`)).body;
}
/** The id of the one job of `owner`, once it exists. */
async function jobOf(owner: string): Promise<JobState> {
  return waitFor(
    async () => (await hub.get<{ jobs: JobState[] }>(`/v1/jobs?owner=${owner}`)).body.jobs[0],
    `a job of ${owner}`,
  );
}

describe('headway run', () => {
  it('reports stages, progress and log lines, and completes on exit 0', async () => {
    const path = script(
      'progress.mjs',
      `${sleep}
console.log('::stage download');
for (const p of [10, 50, 100]) { console.log('downloading ' + p + '%'); await sleep(20); }
console.log('::stage encode');
for (let i = 1; i <= 4; i++) { process.stdout.write('chunk ' + i + '/4\\r'); await sleep(20); }
console.log('\\nall done');
`,
    );
    const { result, stdout } = exec({
      command: node,
      args: [path],
      owner: 'alice',
      name: 'encode',
      stages: [{ name: 'download' }, { name: 'encode', weight: 3 }],
    });
    const outcome = await result;
    expect(outcome).toMatchObject({ exitCode: 0, status: 'completed', signal: null });
    expect(stdout.text()).toContain('all done');
    const final = await state(outcome.jobId);
    expect(final).toMatchObject({
      status: 'completed',
      owner: 'alice',
      name: 'encode',
      result: { exitCode: 0 },
    });
    expect(final.metadata.run).toMatchObject({ pid: expect.any(Number) });
    const log = await events(outcome.jobId);
    const stages = log.filter((e) => e.kind === 'stage').map((e) => (e.data as { name: string }).name);
    expect(stages).toEqual(['download', 'download', 'encode']);
    const encodeProgress = log.filter(
      (e, i) =>
        e.kind === 'progress' &&
        i > log.findIndex((x) => x.kind === 'stage' && (x.data as { name: string }).name === 'encode'),
    );
    expect(encodeProgress.at(-1)?.data).toMatchObject({ current: 4, total: 4 });
    expect(log.some((e) => e.kind === 'log' && (e.data as { message: string }).message === 'all done')).toBe(
      true,
    );
  });

  it('fails with the exit code and the tail of stderr', async () => {
    const path = script(
      'fail.mjs',
      `console.log('working 30%');
console.error('warning: low disk');
console.error('fatal: cannot write output.mp4');
process.exit(3);
`,
    );
    const { result } = exec({ command: node, args: [path], owner: 'bob' });
    const outcome = await result;
    expect(outcome).toMatchObject({ exitCode: 3, status: 'failed' });
    const final = await state(outcome.jobId);
    expect(final.status).toBe('failed');
    expect(final.error).toMatchObject({ code: 'EXIT_3', retryable: false });
    expect(final.error?.message).toContain('fatal: cannot write output.mp4');
    expect(final.progress.percent).toBe(30);
  });

  it('reads simulated ffmpeg -progress output against --duration', async () => {
    const path = script(
      'ffmpeg.mjs',
      `${sleep}
console.error('ffmpeg version 6.0 Copyright (c) the FFmpeg developers');
for (let t = 1; t <= 4; t++) {
  console.log(['frame=' + t * 25, 'fps=25.0', 'total_size=' + t * 1000, 'out_time_us=' + t * 2500000,
    'out_time_ms=' + t * 2500000, 'out_time=00:00:0' + (t * 2.5).toFixed(2), 'speed=1.0x',
    'progress=' + (t === 4 ? 'end' : 'continue')].join('\\n'));
  await sleep(300);
}
`,
    );
    const { result } = exec({ command: node, args: [path], owner: 'carol', duration: 10 });
    const outcome = await result;
    expect(outcome.status).toBe('completed');
    const log = await events(outcome.jobId);
    const percents = log
      .filter((e) => e.kind === 'progress')
      .map((e) => (e.data as { percent: number }).percent);
    expect(percents).toEqual([25, 50, 75, 100]);
    // The key=value lines were progress, not log lines.
    expect(log.filter((e) => e.kind === 'log').map((e) => (e.data as { message: string }).message)).toEqual([
      'ffmpeg version 6.0 Copyright (c) the FFmpeg developers',
    ]);
  });

  it('rate-limits log lines', async () => {
    const path = script('chatty.mjs', `for (let i = 0; i < 500; i++) console.log('line ' + i);\n`);
    const { result } = exec({ command: node, args: [path], owner: 'dave', logRate: 10 });
    const outcome = await result;
    const logs = (await events(outcome.jobId)).filter((e) => e.kind === 'log');
    // The burst (20) and a count of the lines left out, not 500 events.
    expect(logs.length).toBeGreaterThanOrEqual(20);
    expect(logs.length).toBeLessThan(40);
  });

  it('a cancel from the browser sends SIGTERM to the command', async () => {
    const path = script(
      'graceful.mjs',
      `${sleep}
process.on('SIGTERM', () => { console.log('got SIGTERM, cleaning up'); process.exit(143); });
for (let i = 0; ; i++) { console.log('tick ' + (i % 100) + '%'); await sleep(50); }
`,
    );
    const { result, stdout } = exec({ command: node, args: [path], owner: 'erin', graceMs: 5000 });
    const job = await jobOf('erin');
    // Its handler is installed once it prints.
    await waitFor(() => stdout.text().includes('tick'), 'output');
    const token = await hub.token('erin');
    await hub.post(`/v1/jobs/${job.id}/cancel`, {}, token);
    const outcome = await result;
    expect(outcome).toMatchObject({ status: 'cancelled', exitCode: 143 });
    expect(stdout.text()).toContain('got SIGTERM');
    expect((await state(job.id)).status).toBe('cancelled');
  });

  it('SIGKILLs a command that ignores SIGTERM after the grace period', async () => {
    const path = script(
      'stubborn.mjs',
      `${sleep}
process.on('SIGTERM', () => console.log('ignoring SIGTERM'));
for (;;) { console.log('50%'); await sleep(50); }
`,
    );
    const { result, stdout } = exec({ command: node, args: [path], owner: 'frank', graceMs: 300 });
    const job = await jobOf('frank');
    await waitFor(() => stdout.text().includes('50%'), 'output');
    await hub.post(`/v1/jobs/${job.id}/cancel`, {}, await hub.token('frank'));
    const outcome = await result;
    expect(outcome).toMatchObject({ status: 'cancelled', signal: 'SIGKILL', exitCode: 137 });
    expect(stdout.text()).toContain('ignoring SIGTERM');
  });

  it('a pause stops the command until the resume', async () => {
    const path = script(
      'counter.mjs',
      `${sleep}
for (let i = 1; i <= 40; i++) { console.log('item ' + i + '/40'); await sleep(25); }
`,
    );
    const { result } = exec({ command: node, args: [path], owner: 'gina' });
    const job = await jobOf('gina');
    await waitFor(async () => (await state(job.id)).progress.current !== undefined, 'progress');
    const token = await hub.token('gina');
    await hub.post(`/v1/jobs/${job.id}/pause`, {}, token);
    try {
      await waitFor(async () => (await state(job.id)).status === 'paused', 'paused');
      // Nothing while stopped: the kernel reports the command stopped (a stopped
      // process cannot print), rather than the test watching for a while.
      const paused = await state(job.id);
      const pid = (paused.metadata.run as { pid: number }).pid;
      await waitFor(() => processState(pid) === 'T', 'the command to be stopped');
      const stopped = await state(job.id);
      expect(stopped.status).toBe('paused');
      expect(stopped.progress.current).toBeLessThan(40);
    } finally {
      // Also when an assertion failed: a command left stopped would never exit.
      await hub.post(`/v1/jobs/${job.id}/resume`, {}, token);
    }
    const outcome = await result;
    expect(outcome.status).toBe('completed');
    const kinds = (await events(job.id)).map((e) => e.kind);
    expect(kinds).toEqual(
      expect.arrayContaining(['pause_requested', 'paused', 'resume_requested', 'resumed']),
    );
  });

  it('fails a command that cannot start with exit code 127', async () => {
    const { result, stderr } = exec({ command: join(dir, 'no-such-program'), owner: 'hank' });
    const outcome = await result;
    expect(outcome).toMatchObject({ exitCode: 127, status: 'failed' });
    expect((await state(outcome.jobId)).error?.code).toBe('SPAWN_ENOENT');
    expect(stderr.text()).not.toBe('');
  });

  it('reports for an existing job with --job', async () => {
    const id = `run-existing-${process.pid}-${Date.now()}`;
    await hub.post('/v1/jobs', { id, owner: 'ivy', name: 'made by the back end' });
    const path = script('short.mjs', `console.log('3/3');\n`);
    const { result } = exec({ command: node, args: [path], job: id });
    expect((await result).jobId).toBe(id);
    expect(await state(id)).toMatchObject({ status: 'completed', name: 'made by the back end' });
  });

  it('refuses a --job that does not exist before running anything', async () => {
    const marker = join(dir, 'ran-missing');
    const path = script(
      'touch.mjs',
      `import { writeFileSync } from 'node:fs'; writeFileSync(${JSON.stringify(marker)}, 'x');\n`,
    );
    const { result } = exec({ command: node, args: [path], job: `run-missing-${process.pid}-${Date.now()}` });
    await expect(result).rejects.toMatchObject({ code: 'HW_ERR_NOT_FOUND' });
    expect(existsSync(marker)).toBe(false);
  });

  it('creates the job under the --job id with --owner, and reports for it when it exists', async () => {
    const id = `run-named-${process.pid}-${Date.now()}`;
    const path = script('short2.mjs', `console.log('2/2');\n`);
    const first = exec({ command: node, args: [path], job: id, owner: 'jill', name: 'named' });
    expect((await first.result).jobId).toBe(id);
    expect(await state(id)).toMatchObject({ owner: 'jill', name: 'named', status: 'completed' });
    const other = `run-named-existing-${process.pid}-${Date.now()}`;
    await hub.post('/v1/jobs', { id: other, owner: 'jill', name: 'already there' });
    const second = exec({ command: node, args: [path], job: other, owner: 'jill' });
    expect((await second.result).jobId).toBe(other);
    expect(await state(other)).toMatchObject({ status: 'completed', name: 'already there' });
  });
});

describe('headway run command line', () => {
  it('parses flags and the command after --', () => {
    const options = parseRunArgs([
      '--owner',
      'alice',
      '--name=Nightly import',
      '--stage',
      'fetch',
      '--stage',
      'load:3',
      '--stage-marker',
      '^== (.+)$',
      '--progress-pattern',
      '(?<current>\\d+) rows',
      '--duration',
      '90',
      '--grace',
      '2',
      '--',
      'import.sh',
      '--fast',
    ]);
    expect(options).toMatchObject({
      owner: 'alice',
      name: 'Nightly import',
      stages: [{ name: 'fetch' }, { name: 'load', weight: 3 }],
      duration: 90,
      graceMs: 2000,
      command: 'import.sh',
      args: ['--fast'],
    });
    expect(parseRunArgs(['--job', 'j1', 'sleep', '1'])).toMatchObject({
      job: 'j1',
      command: 'sleep',
      args: ['1'],
    });
  });

  it.each([
    [['--owner', 'a']], // no command
    [['--', 'true']], // no owner
    [['--owner', 'a', '--progress-pattern', '(', '--', 'true']],
    [['--owner', 'a', '--duration', 'soon', '--', 'true']],
    [['--owner', 'a', '--frobnicate', '--', 'true']],
    [['--owner', 'a', '--stage', 'x:0', '--', 'true']],
  ])('exits 2 on a usage error: %j', async (argv) => {
    const out = sink();
    const err = sink();
    expect(await run(argv, {}, { stdout: out, stderr: err })).toBe(2);
    expect(err.text()).not.toBe('');
  });

  it('exits 2 naming HEADWAY_API_KEY when there is no API key, and runs with one', async () => {
    const out = sink();
    const err = sink();
    const none = { HEADWAY_URL: hub.url, HEADWAY_DATA_DIR: dir };
    expect(await run(['--owner', 'a', '--', node, '-e', '0'], none, { stdout: out, stderr: err })).toBe(2);
    expect(err.text()).toContain('HEADWAY_API_KEY');
    const path = script('exit5.mjs', `console.log('half 50%'); process.exit(5);\n`);
    const env = { HEADWAY_URL: hub.url, HEADWAY_API_KEY: hub.apiKey };
    expect(await run(['--owner', 'jack', '--', node, path], env, { stdout: out, stderr: err })).toBe(5);
    expect(out.text()).toContain('half 50%');
    const job = await jobOf('jack');
    expect(job.error?.code).toBe('EXIT_5');
  });

  it('prints its help', async () => {
    const out = sink();
    expect(await run(['--help'], {}, { stdout: out, stderr: sink() })).toBe(0);
    expect(out.text()).toContain('headway run');
  });
});
