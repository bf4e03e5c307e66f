/**
 * The Python client (clients/python) against a real hub: runs its unittest suites
 * of the stdlib core and the asyncio client with the machine's python3, pointed at
 * a hub started here, and installs the package with pip, offline. Skips with a
 * reason when no Python 3.9+ is found, except in CI, where that is a failure.
 */
import { cpSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { IN_CI, requireService, startHub, type TestHub } from '@headway/test-helpers';
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

const PYTHON = process.env.HEADWAY_TEST_PYTHON ?? 'python3';
/** The number of tests in each suite: a test that silently stops running fails here. */
const EXPECTED_TESTS = { test_client: 40, test_aio: 5, test_webhooks: 6 };
/** The whole suite takes a few seconds; this only bounds a hang. */
const SUITE_TIMEOUT_MS = 120_000;

const problem = pythonProblem(PYTHON);
const pipProblem = pythonProblem(SYSTEM_PYTHON, ['setuptools', 'pip', 'venv']);
const python = requireService('Python', problem);

describe.skipIf(python.skip)(python.title('Python client'), () => {
  let hub: TestHub;
  const user = 'python-client-user';

  beforeAll(async () => {
    hub = await startHub();
  });

  afterAll(async () => {
    await hub?.close();
  });

  it('finds Python 3.9 or newer', () => {
    expect(problem, `${problem} (set HEADWAY_TEST_PYTHON to another interpreter)`).toBeNull();
  });

  it.each(Object.entries(EXPECTED_TESTS))(
    'passes its %s suite against a real hub, leaving no job unfinished',
    async (suite, count) => {
      await expectSuitePasses(PYTHON, suite, await suiteEnv(hub, user), count, SUITE_TIMEOUT_MS - 5_000);
      expect(await unfinishedJobs(hub, user)).toEqual([]);
    },
    SUITE_TIMEOUT_MS,
  );

  it.skipIf(pipProblem !== null && !IN_CI)(
    pipProblem !== null && !IN_CI
      ? `installs with pip (skipped: ${pipProblem})`
      : 'installs with pip, offline, at the version of the protocol package',
    async () => {
      expect(
        pipProblem,
        `${pipProblem} (apt-get install python3-pip python3-setuptools python3-venv)`,
      ).toBeNull();
      const dir = mkdtempSync(join(tmpdir(), 'headway-pip-'));
      try {
        // A copy: a build writes build/ and *.egg-info next to the sources.
        cpSync(PACKAGE_DIR, join(dir, 'src'), { recursive: true, filter: (p) => !p.includes('__pycache__') });
        // A venv of the system's packages (setuptools among them), without a pip of its
        // own: the system's pip installs into it, which saves copying pip in.
        const venv = await run(
          SYSTEM_PYTHON,
          ['-m', 'venv', '--without-pip', '--system-site-packages', join(dir, 'venv')],
          { timeoutMs: 60_000 },
        );
        expect(venv.code, venv.output).toBe(0);
        const python = join(dir, 'venv', 'bin', 'python');
        const env = { ...process.env, PIP_NO_INDEX: '1', PIP_DISABLE_PIP_VERSION_CHECK: '1' };
        const pip = await run(
          SYSTEM_PYTHON,
          ['-m', 'pip', '--python', python, 'install', '--no-build-isolation', join(dir, 'src')],
          { env, timeoutMs: 60_000 },
        );
        expect(pip.code, pip.output).toBe(0);
        const probe = await run(
          python,
          [
            '-c',
            'import headway, headway.aio, headway.leases, os; print(headway.__version__, os.path.dirname(headway.__file__))',
          ],
          { cwd: dir, env: { ...process.env, PYTHONPATH: '' }, timeoutMs: 30_000 },
        );
        expect(probe.code, probe.output).toBe(0);
        const [version, location] = probe.output.trim().split(' ');
        const protocol = JSON.parse(readFileSync(`${ROOT}packages/protocol/package.json`, 'utf8')) as {
          version: string;
        };
        expect(version).toBe(protocol.version);
        expect(location).toContain('site-packages');
        const typed = await run(
          python,
          ['-c', 'import importlib.resources as r; print(r.files("headway").joinpath("py.typed").is_file())'],
          {
            cwd: dir,
            timeoutMs: 30_000,
          },
        );
        expect(typed.output.trim()).toBe('True');
      } finally {
        rmSync(dir, { recursive: true, force: true });
      }
    },
    SUITE_TIMEOUT_MS,
  );
});
