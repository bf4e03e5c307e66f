/**
 * headway.celery against real Celery workers (prefork and threads pools), the
 * machine's Redis and a hub started here: the Python suite (clients/python/tests/
 * test_celery.py), then examples/celery as its README runs it, through a hub
 * restart. Skips with a reason when Celery is missing, except in CI.
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { requireService, startHub, type TestHub } from '@headway/test-helpers';
import { Redis } from 'ioredis';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  expectSuitePasses,
  PACKAGE_DIR,
  pythonProblem,
  ROOT,
  run,
  SYSTEM_PYTHON,
  suiteEnv,
  unfinishedJobs,
} from './python-suite.js';

/** The number of tests in test_celery.py: a test that silently stops running fails here. */
const EXPECTED_TESTS = 10;
const SUITE_TIMEOUT_MS = 120_000;
/** The Redis database of the Celery tests (their keys carry unique names too). */
const REDIS_DB = 11;

const problem = pythonProblem(SYSTEM_PYTHON, ['celery', 'redis']);
const python = requireService('Celery', problem);

describe.skipIf(python.skip)(python.title('Celery integration'), () => {
  let hub: TestHub;

  beforeAll(async () => {
    hub = await startHub();
  });

  afterAll(async () => {
    await hub?.close();
  });

  it('finds Celery and redis-py for the system Python', () => {
    expect(problem, `${problem} (set HEADWAY_TEST_SYSTEM_PYTHON to another interpreter)`).toBeNull();
  });

  it(
    'passes its suite against real workers, Redis and the hub',
    async () => {
      const user = 'python-celery-user';
      await expectSuitePasses(
        SYSTEM_PYTHON,
        'test_celery',
        await suiteEnv(hub, user),
        EXPECTED_TESTS,
        SUITE_TIMEOUT_MS,
      );
      expect(await unfinishedJobs(hub, user)).toEqual([]);
    },
    SUITE_TIMEOUT_MS,
  );

  it(
    'runs the example worker through a hub restart, applying every report once',
    async () => {
      const user = 'python-celery-example-user';
      const queue = `hw-example-${Math.random().toString(36).slice(2, 10)}`;
      const redis = new Redis({ host: '127.0.0.1', port: 6379, db: REDIS_DB, lazyConnect: true });
      const env = await suiteEnv(hub, user, {
        CELERY_BROKER_URL: `redis://127.0.0.1:6379/${REDIS_DB}`,
        CELERY_QUEUE: queue,
        PYTHONPATH: PACKAGE_DIR,
      });
      const cwd = `${ROOT}examples/celery`;
      const worker = spawn(
        SYSTEM_PYTHON,
        [
          '-m',
          'celery',
          '-A',
          'tasks',
          'worker',
          '--loglevel=INFO',
          '-P',
          'threads',
          '--without-mingle',
          '--without-gossip',
        ],
        { cwd, env, stdio: ['ignore', 'pipe', 'pipe'] },
      );
      let log = '';
      worker.stdout?.on('data', (chunk: Buffer) => {
        log += chunk.toString();
      });
      worker.stderr?.on('data', (chunk: Buffer) => {
        log += chunk.toString();
      });
      try {
        await until(
          () => log.includes(' ready.'),
          30_000,
          () => log,
        );
        const enqueued = await run(
          SYSTEM_PYTHON,
          ['-c', `import tasks; print(tasks.start_transcode(3, "${user}"))`],
          {
            env,
            cwd,
            timeoutMs: 30_000,
          },
        );
        expect(enqueued.code, enqueued.output).toBe(0);
        const taskId = enqueued.output.trim().split('\n').pop() ?? '';
        await until(
          async () => ((await hub.get(`/v1/jobs/${taskId}`)).body?.progress?.current ?? 0) >= 3,
          10_000,
          () => log,
        );
        hub = await hub.restart({ port: Number(new URL(hub.url).port) });
        await until(
          async () => (await hub.get(`/v1/jobs/${taskId}`)).body?.status === 'completed',
          30_000,
          () => log,
        );
        const events = (await hub.get(`/v1/jobs/${taskId}/events?since=0&limit=1000`)).body.events as {
          seq: number;
          kind: string;
          data: { current?: number; name?: string };
        }[];
        expect(events.map((e) => e.seq)).toEqual(events.map((_, i) => i + 1));
        const counts = events.filter((e) => e.kind === 'progress').map((e) => e.data.current ?? 0);
        // Strictly increasing: a report retried across the restart was applied once.
        expect(
          counts.every((c, i) => i === 0 || c > (counts[i - 1] ?? 0)),
          String(counts),
        ).toBe(true);
        expect(counts.at(-1)).toBe(30);
        expect(events.filter((e) => e.kind === 'stage').map((e) => e.data.name)).toEqual([
          'probe',
          'encode',
          'package',
        ]);
        expect(events.filter((e) => e.kind === 'completed')).toHaveLength(1);
      } finally {
        await stop(worker);
        await redis.connect();
        const keys = await redis.keys(`*${queue}*`);
        if (keys.length > 0) await redis.del(...keys);
        await redis.quit();
      }
      expect(await unfinishedJobs(hub, user)).toEqual([]);
    },
    SUITE_TIMEOUT_MS,
  );
});

/** Wait until `check` holds, polling; the error carries `context()` (a worker's log). */
async function until(check: () => boolean | Promise<boolean>, timeoutMs: number, context: () => string) {
  const deadline = Date.now() + timeoutMs;
  while (!(await check())) {
    if (Date.now() > deadline) throw new Error(`timed out; worker log:\n${context().slice(-4000)}`);
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
}

/** SIGTERM (Celery's warm shutdown), then SIGKILL after 10 s. */
function stop(child: ChildProcess): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return Promise.resolve();
  return new Promise((resolve) => {
    const timer = setTimeout(() => child.kill('SIGKILL'), 10_000);
    child.once('exit', () => {
      clearTimeout(timer);
      resolve();
    });
    child.kill('SIGTERM');
  });
}
