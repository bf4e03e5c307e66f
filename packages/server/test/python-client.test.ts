/**
 * The Python client (clients/python) against a real hub: runs its unittest suite
 * with the machine's python3, pointed at a hub started here. Skips with a reason
 * when no Python 3.9+ is found, except in CI, where that is a failure.
 */
import { spawn, spawnSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { requireService, startHub, type TestHub } from '@headway/test-helpers';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

const ROOT = fileURLToPath(new URL('../../../', import.meta.url));
const SUITE = 'clients/python/test_headway.py';
const PYTHON = process.env.HEADWAY_TEST_PYTHON ?? 'python3';
/** The number of tests in the suite: a test that silently stops running fails here. */
const EXPECTED_TESTS = 39;
/** The whole suite takes a few seconds; this only bounds a hang. */
const SUITE_TIMEOUT_MS = 120_000;

/** Why the suite cannot run here, or null. */
function pythonProblem(): string | null {
  const probe = spawnSync(PYTHON, ['-c', 'import sys; print("%d.%d" % sys.version_info[:2])'], {
    encoding: 'utf8',
  });
  if (probe.error) return `${PYTHON} not found`;
  const [major = 0, minor = 0] = probe.stdout.trim().split('.').map(Number);
  if (probe.status !== 0 || major < 3 || (major === 3 && minor < 9)) {
    return `${PYTHON} is ${probe.stdout.trim() || 'unusable'}; the client needs Python 3.9+`;
  }
  return null;
}

const problem = pythonProblem();
const python = requireService(
  'Python 3.9+',
  problem && `${problem} (set HEADWAY_TEST_PYTHON to another interpreter)`,
);

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

  it(
    'passes its unittest suite against a real hub',
    async () => {
      const token = await hub.token(user);
      const { code, output } = await run(PYTHON, ['-m', 'unittest', '-v', SUITE], {
        ...process.env,
        HEADWAY_URL: hub.url,
        HEADWAY_API_KEY: hub.apiKey,
        HEADWAY_TEST_USER: user,
        HEADWAY_TEST_TOKEN: token,
        // No __pycache__ in the source tree.
        PYTHONDONTWRITEBYTECODE: '1',
        PYTHONUNBUFFERED: '1',
      });
      // On failure the assertion message carries unittest's own report.
      expect(code, output.slice(-8000)).toBe(0);
      expect(output).toMatch(new RegExp(`^Ran ${EXPECTED_TESTS} tests? in `, 'm'));
      expect(output).toMatch(/^OK$/m); // "OK (skipped=N)" would mean tests did not run
    },
    SUITE_TIMEOUT_MS,
  );
});

/** Run a command to completion, collecting stdout and stderr together. */
function run(
  command: string,
  args: string[],
  env: NodeJS.ProcessEnv,
): Promise<{ code: number | null; output: string }> {
  return new Promise((resolve, reject) => {
    const child = spawn(command, args, { cwd: ROOT, env, stdio: ['ignore', 'pipe', 'pipe'] });
    let output = '';
    child.stdout.setEncoding('utf8').on('data', (chunk: string) => {
      output += chunk;
    });
    child.stderr.setEncoding('utf8').on('data', (chunk: string) => {
      output += chunk;
    });
    const timer = setTimeout(() => child.kill('SIGKILL'), SUITE_TIMEOUT_MS - 5_000);
    child.on('error', (err) => {
      clearTimeout(timer);
      reject(err);
    });
    child.on('close', (code) => {
      clearTimeout(timer);
      resolve({ code, output });
    });
  });
}
