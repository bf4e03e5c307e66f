/**
 * Running the Python package's unittest suites (clients/python/tests) against a
 * hub started by a vitest file: which interpreter, whether it has what a suite
 * needs, and one run collected into a result to assert on.
 */
import { spawn, spawnSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import type { TestHub } from '@headway/test-helpers';
import { expect } from 'vitest';

export const ROOT = fileURLToPath(new URL('../../../', import.meta.url));
export const PACKAGE_DIR = `${ROOT}clients/python`;
/**
 * Debian's interpreter, for which apt installs Celery, RQ, FastAPI and uvicorn
 * (the first `python3` on the PATH may be another one without them).
 */
export const SYSTEM_PYTHON = process.env.HEADWAY_TEST_SYSTEM_PYTHON ?? '/usr/bin/python3';

/** Why `python` cannot run a suite that imports `modules`, or null. */
export function pythonProblem(python: string, modules: string[] = []): string | null {
  const imports = modules.map((m) => `import ${m}; `).join('');
  const probe = spawnSync(python, ['-c', `${imports}import sys; print("%d.%d" % sys.version_info[:2])`], {
    encoding: 'utf8',
  });
  if (probe.error) return `${python} not found`;
  if (probe.status !== 0) {
    const missing = /No module named '([^']+)'/.exec(probe.stderr)?.[1];
    return missing
      ? `${python} has no ${missing} (apt-get install python3-${missing.replace(/_/g, '-')})`
      : `${python} failed: ${probe.stderr.trim().split('\n').pop()}`;
  }
  const [major = 0, minor = 0] = probe.stdout.trim().split('.').map(Number);
  if (major < 3 || (major === 3 && minor < 9))
    return `${python} is ${probe.stdout.trim()}; Headway needs 3.9+`;
  return null;
}

/** The environment that points a suite at `hub` as `user`, whose browser token it carries. */
export async function suiteEnv(
  hub: TestHub,
  user: string,
  extra: NodeJS.ProcessEnv = {},
): Promise<NodeJS.ProcessEnv> {
  return {
    ...process.env,
    HEADWAY_URL: hub.url,
    HEADWAY_API_KEY: hub.apiKey,
    HEADWAY_TEST_USER: user,
    HEADWAY_TEST_TOKEN: await hub.token(user),
    // No __pycache__ in the source tree.
    PYTHONDONTWRITEBYTECODE: '1',
    PYTHONUNBUFFERED: '1',
    ...extra,
  };
}

export interface RunResult {
  code: number | null;
  output: string;
}

/** Run a command to completion (killed after `timeoutMs`), collecting stdout and stderr together. */
export function run(
  command: string,
  args: string[],
  options: { env?: NodeJS.ProcessEnv; cwd?: string; timeoutMs: number },
): Promise<RunResult> {
  return new Promise((resolve, reject) => {
    const child = spawn(command, args, {
      cwd: options.cwd ?? ROOT,
      env: options.env ?? process.env,
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let output = '';
    child.stdout.setEncoding('utf8').on('data', (chunk: string) => {
      output += chunk;
    });
    child.stderr.setEncoding('utf8').on('data', (chunk: string) => {
      output += chunk;
    });
    const timer = setTimeout(() => child.kill('SIGKILL'), options.timeoutMs);
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

/** Run one test module of clients/python/tests (`test_celery` …) with unittest, verbosely. */
export function runSuite(python: string, module: string, env: NodeJS.ProcessEnv, timeoutMs: number) {
  return run(python, ['-m', 'unittest', '-v', module], { env, cwd: `${PACKAGE_DIR}/tests`, timeoutMs });
}

/** The jobs of `owner` that are still queued, running or paused: a suite must leave none. */
export async function unfinishedJobs(hub: TestHub, owner: string): Promise<string[]> {
  const res = await hub.get(
    `/v1/jobs?owner=${encodeURIComponent(owner)}&status=queued,running,paused&limit=500`,
  );
  return (res.body.jobs as { id: string; status: string }[]).map((j) => `${j.id} (${j.status})`);
}

/** Run one unittest suite and check that all `count` of its tests ran and passed. */
export async function expectSuitePasses(
  python: string,
  suite: string,
  env: NodeJS.ProcessEnv,
  count: number,
  timeoutMs: number,
): Promise<void> {
  const { code, output } = await runSuite(python, suite, env, timeoutMs);
  // On failure the assertion message carries unittest's own report.
  expect(code, output.slice(-8000)).toBe(0);
  expect(output).toMatch(new RegExp(`^Ran ${count} tests? in `, 'm'));
  expect(output).toMatch(/^OK$/m); // "OK (skipped=N)" would mean tests did not run
}
