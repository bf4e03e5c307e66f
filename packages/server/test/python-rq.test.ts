/**
 * headway.rq against real RQ workers (with and without a work horse), the
 * machine's Redis and a hub started here (clients/python/tests/test_rq.py).
 * Skips with a reason when RQ is missing, except in CI.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startHub, type TestHub } from './helpers.js';
import { IN_CI, pythonProblem, runSuite, SYSTEM_PYTHON, suiteEnv, unfinishedJobs } from './python-suite.js';

/** The number of tests in test_rq.py: a test that silently stops running fails here. */
const EXPECTED_TESTS = 9;
const SUITE_TIMEOUT_MS = 90_000;

const problem = pythonProblem(SYSTEM_PYTHON, ['rq', 'redis']);
const skip = problem !== null && !IN_CI;

describe.skipIf(skip)(skip ? `RQ integration (skipped: ${problem})` : 'RQ integration', () => {
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
      const { code, output } = await runSuite(
        SYSTEM_PYTHON,
        'test_rq',
        await suiteEnv(hub, user),
        SUITE_TIMEOUT_MS,
      );
      expect(code, output.slice(-8000)).toBe(0);
      expect(output).toMatch(new RegExp(`^Ran ${EXPECTED_TESTS} tests? in `, 'm'));
      expect(output).toMatch(/^OK$/m);
      expect(await unfinishedJobs(hub, user)).toEqual([]);
    },
    SUITE_TIMEOUT_MS,
  );
});
