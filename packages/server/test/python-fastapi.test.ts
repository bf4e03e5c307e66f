/**
 * headway.fastapi and examples/fastapi against a hub started here, through
 * FastAPI's test client and a real uvicorn (clients/python/tests/test_fastapi.py).
 * Skips with a reason when FastAPI, uvicorn or httpx is missing, except in CI.
 */

import { requireService, startHub, type TestHub } from '@headway/test-helpers';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { expectSuitePasses, pythonProblem, SYSTEM_PYTHON, suiteEnv, unfinishedJobs } from './python-suite.js';

/** The number of tests in test_fastapi.py: a test that silently stops running fails here. */
const EXPECTED_TESTS = 5;
const SUITE_TIMEOUT_MS = 60_000;

const problem = pythonProblem(SYSTEM_PYTHON, ['fastapi', 'uvicorn', 'httpx']);
const python = requireService('FastAPI', problem);

describe.skipIf(python.skip)(python.title('FastAPI integration'), () => {
  let hub: TestHub;

  beforeAll(async () => {
    hub = await startHub();
  });

  afterAll(async () => {
    await hub?.close();
  });

  it('finds FastAPI, uvicorn and httpx for the system Python', () => {
    expect(problem, `${problem} (set HEADWAY_TEST_SYSTEM_PYTHON to another interpreter)`).toBeNull();
  });

  it(
    'passes its suite: the token route, the example app, uvicorn',
    async () => {
      await expectSuitePasses(
        SYSTEM_PYTHON,
        'test_fastapi',
        await suiteEnv(hub, 'python-fastapi-user'),
        EXPECTED_TESTS,
        SUITE_TIMEOUT_MS,
      );
      for (const user of ['py-fastapi-ann', 'py-fastapi-bob'])
        expect(await unfinishedJobs(hub, user)).toEqual([]);
    },
    SUITE_TIMEOUT_MS,
  );
});
