/**
 * headway.rq against real RQ workers (with and without a work horse), the
 * machine's Redis and a hub started here (clients/python/tests/test_rq.py).
 * Then examples/rq as its README runs it. Skips with a reason when RQ is
 * missing, except in CI.
 */

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

/** The number of tests in test_rq.py: a test that silently stops running fails here. */
const EXPECTED_TESTS = 9;
const SUITE_TIMEOUT_MS = 90_000;

const problem = pythonProblem(SYSTEM_PYTHON, ['rq', 'redis']);
const python = requireService('RQ', problem);

describe.skipIf(python.skip)(python.title('RQ integration'), () => {
  let hub: TestHub;
  const user = 'python-rq-user';

  beforeAll(async () => {
    hub = await startHub();
  });

  afterAll(async () => {
    await hub?.close();
  });

  it('finds RQ and redis-py for the system Python', () => {
    expect(problem, `${problem} (set HEADWAY_TEST_SYSTEM_PYTHON to another interpreter)`).toBeNull();
  });

  it(
    'passes its suite against real workers, Redis and the hub',
    async () => {
      await expectSuitePasses(
        SYSTEM_PYTHON,
        'test_rq',
        await suiteEnv(hub, user),
        EXPECTED_TESTS,
        SUITE_TIMEOUT_MS,
      );
      expect(await unfinishedJobs(hub, user)).toEqual([]);
    },
    SUITE_TIMEOUT_MS,
  );

  it(
    'runs the example: a job enqueued for a user completes through the worker class',
    async () => {
      const owner = 'python-rq-example-user';
      const queue = `hw-rq-example-${Math.random().toString(36).slice(2, 10)}`;
      const redisUrl = 'redis://127.0.0.1:6379/12';
      const env = await suiteEnv(hub, owner, {
        PYTHONPATH: PACKAGE_DIR,
        RQ_QUEUE: queue,
        RQ_REDIS_URL: redisUrl,
      });
      const cwd = `${ROOT}examples/rq`;
      const redis = new Redis(redisUrl, { lazyConnect: true });
      let id = '';
      try {
        const enqueued = await run(
          SYSTEM_PYTHON,
          ['-c', `import jobs; print(jobs.start_transcode(0.5, "${owner}"))`],
          {
            env,
            cwd,
            timeoutMs: 30_000,
          },
        );
        expect(enqueued.code, enqueued.output).toBe(0);
        id = enqueued.output.trim().split('\n').pop() ?? '';
        expect((await hub.get(`/v1/jobs/${id}`)).body.status).toBe('queued');
        const worker = await run(
          SYSTEM_PYTHON,
          ['-m', 'rq.cli', 'worker', '-w', 'headway.rq.HeadwayWorker', '--url', redisUrl, '--burst', queue],
          { env, cwd, timeoutMs: 60_000 },
        );
        expect(worker.code, worker.output).toBe(0);
        const state = (await hub.get(`/v1/jobs/${id}`)).body;
        expect(state.status, worker.output).toBe('completed');
        expect(state.result).toEqual({ url: `https://cdn.example/${id}.m3u8` });
        expect(state.stage.name).toBe('package');
      } finally {
        await redis.connect();
        const keys = [...(await redis.keys(`*${queue}*`)), ...(id ? await redis.keys(`*${id}*`) : [])];
        if (keys.length > 0) await redis.del(...keys);
        await redis.quit();
      }
    },
    SUITE_TIMEOUT_MS,
  );
});
