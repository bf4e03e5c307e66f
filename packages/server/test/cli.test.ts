/**
 * The real `headway` command, built and run as a child process: what an
 * operator types is what is tested.
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { createServer as createNetServer, type Server } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import {
  POSTGRES_URL,
  REPO_ROOT,
  requireFreshBuild,
  requirePostgres,
  uniqueName,
  waitFor,
} from '@headway/test-helpers';
import { afterEach, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import WebSocket from 'ws';

const postgres = await requirePostgres();
const bin = join(REPO_ROOT, 'packages/server/bin/headway.js');
/** The graceful shutdown the brief promises: well under the 10 s `shutdownTimeoutMs`. */
const EXIT_WITHIN_MS = 10_000;

interface Cli {
  child: ChildProcess;
  readonly stdout: string;
  readonly stderr: string;
  exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
}

const children: ChildProcess[] = [];
let dataDir: string;

/** The environment of the test runner without any HEADWAY_* setting that could leak into the hub. */
function cleanEnv(extra: Record<string, string> = {}): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = {};
  for (const [k, v] of Object.entries(process.env)) if (!k.startsWith('HEADWAY_')) env[k] = v;
  return { ...env, NO_COLOR: '1', ...extra };
}

function run(args: string[], env: Record<string, string> = {}): Cli {
  const child = spawn(process.execPath, [bin, ...args], { cwd: REPO_ROOT, env: cleanEnv(env) });
  children.push(child);
  let stdout = '';
  let stderr = '';
  child.stdout?.setEncoding('utf8').on('data', (chunk: string) => (stdout += chunk));
  child.stderr?.setEncoding('utf8').on('data', (chunk: string) => (stderr += chunk));
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) =>
    child.once('exit', (code, signal) => resolve({ code, signal })),
  );
  return {
    child,
    get stdout() {
      return stdout;
    },
    get stderr() {
      return stderr;
    },
    exited,
  };
}

/** Resolves with the first match of `pattern` in the child's stdout; rejects if it exits first. */
async function waitForStdout(cli: Cli, pattern: RegExp, ms = 15_000): Promise<RegExpMatchArray> {
  let exited = false;
  void cli.exited.then(() => (exited = true));
  const found = await waitFor(() => pattern.exec(cli.stdout) ?? exited, `${pattern} in stdout`, ms).catch(
    () => false as const,
  );
  if (found === true || found === false) {
    throw new Error(`no ${pattern} in stdout\n--- stdout\n${cli.stdout}\n--- stderr\n${cli.stderr}`);
  }
  return found;
}

/** Resolves with how the child ended, or rejects if it is still running after `ms`. */
async function exitWithin(cli: Cli, ms: number) {
  let timer: NodeJS.Timeout | undefined;
  try {
    return await Promise.race([
      cli.exited,
      new Promise<never>((_, reject) => {
        timer = setTimeout(
          () => reject(new Error(`still running after ${ms} ms\n--- stderr\n${cli.stderr}`)),
          ms,
        );
      }),
    ]);
  } finally {
    clearTimeout(timer);
  }
}

async function startHub(args: string[] = [], env: Record<string, string> = {}) {
  // The banner is for terminals; a pipe gets structured logs unless asked for the banner.
  const cli = run(['start', '--port', '0', '--data-dir', dataDir, '--log-format', 'pretty', ...args], env);
  const [, url] = await waitForStdout(cli, /^ {2}URL +(http:\/\/\S+)$/m);
  await waitForStdout(cli, /Press Ctrl\+C to stop\./);
  return { cli, url: url! };
}

beforeAll(() => {
  // The test runs the compiled command, built before the run.
  requireFreshBuild();
});

beforeEach(() => {
  dataDir = mkdtempSync(join(tmpdir(), 'headway-cli-'));
});

afterEach(() => {
  for (const child of children.splice(0)) {
    if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
  }
  rmSync(dataDir, { recursive: true, force: true });
});

describe('headway start', () => {
  it.each([
    'SIGTERM',
    'SIGINT',
  ] as const)('prints a banner with the real URL, serves /healthz, and exits 0 on %s', async (signal) => {
    const { cli, url } = await startHub();
    expect(url).toMatch(/^http:\/\/127\.0\.0\.1:\d+$/);
    expect(url).not.toMatch(/:0$/);
    const out = cli.stdout;
    expect(out).toContain('development mode');
    expect(out).toContain(`WebSocket    ${url.replace('http', 'ws')}/v1/ws`);
    expect(out).toContain(`Data         ${dataDir}`);
    // Plain text when stdout is not a terminal.
    expect(out).not.toContain('\x1b[');

    const res = await fetch(`${url}/healthz`);
    expect(res.status).toBe(200);

    cli.child.kill(signal);
    const { code } = await exitWithin(cli, EXIT_WITHIN_MS);
    expect(code).toBe(0);
  });

  it('prints development credentials that work, and keeps them across restarts', async () => {
    const first = await startHub();
    const secrets = JSON.parse(readFileSync(join(dataDir, 'secrets.json'), 'utf8'));
    const key = /^ {2}API key +(\S+)$/m.exec(first.cli.stdout)?.[1];
    expect(key).toBe(secrets.apiKey);
    expect(first.cli.stdout).toContain(`export HEADWAY_API_KEY=${secrets.apiKey}`);
    const token = /^ {2}User token +(\S+)$/m.exec(first.cli.stdout)?.[1];
    expect(token).toMatch(/^ey/);
    expect(first.cli.stdout).toMatch(/^ {2}Admin token +ey\S+$/m);

    // The banner's curl commands, as fetch.
    const headers = { authorization: `Bearer ${key}`, 'content-type': 'application/json' };
    const created = await fetch(`${first.url}/v1/jobs`, {
      method: 'POST',
      headers,
      body: JSON.stringify({ id: 'hello', owner: 'demo', name: 'Hello, Headway' }),
    });
    expect(created.status).toBeLessThan(300);
    const progress = await fetch(`${first.url}/v1/jobs/hello/events`, {
      method: 'POST',
      headers,
      body: JSON.stringify({ events: [{ kind: 'progress', percent: 42, message: 'working' }] }),
    });
    expect(progress.status).toBe(200);
    first.cli.child.kill('SIGTERM');
    expect((await exitWithin(first.cli, EXIT_WITHIN_MS)).code).toBe(0);

    // After a restart the old browser token still reads the job.
    const second = await startHub();
    expect(second.cli.stdout).toContain(`API key      ${secrets.apiKey}`);
    const job = await fetch(`${second.url}/v1/jobs/hello`, { headers: { authorization: `Bearer ${token}` } });
    expect(job.status).toBe(200);
    second.cli.child.kill('SIGTERM');
    expect((await exitWithin(second.cli, EXIT_WITHIN_MS)).code).toBe(0);
  });

  it('closes connected WebSockets with a reconnect code and still exits 0', async () => {
    const { cli, url } = await startHub();
    const token = /^ {2}User token +(\S+)$/m.exec(cli.stdout)?.[1];
    const ws = new WebSocket(`${url.replace('http', 'ws')}/v1/ws?token=${token}`);
    await new Promise<void>((resolve, reject) => {
      ws.once('open', () => resolve());
      ws.once('error', reject);
    });
    const closed = new Promise<number>((resolve) => ws.once('close', (code) => resolve(code)));
    cli.child.kill('SIGTERM');
    const code = await closed;
    // 4000–4099: reconnect and resume.
    expect(code).toBeGreaterThanOrEqual(4000);
    expect(code).toBeLessThan(4100);
    expect((await exitWithin(cli, EXIT_WITHIN_MS)).code).toBe(0);
  });

  it('runs the demo workers with --demo and stops them on SIGTERM', async () => {
    const { cli, url } = await startHub(['--demo', '--log-level', 'warn']);
    expect(cli.stdout).toContain('Demo:');
    expect(cli.stdout).toContain(`headway watch --user demo --url ${url}`);
    const admin = /^ {2}Admin token +(\S+)$/m.exec(cli.stdout)?.[1];
    // The demo reports through the REST API; its first job appears shortly.
    const jobs = await waitFor(
      async () => {
        const res = await fetch(`${url}/v1/jobs?owner=demo`, {
          headers: { authorization: `Bearer ${admin}` },
        });
        const listed = res.ok ? ((await res.json()) as { jobs: unknown[] }).jobs : [];
        return listed.length > 0 && listed;
      },
      'a demo job',
      10_000,
    );
    expect(jobs.length).toBeGreaterThan(0);
    cli.child.kill('SIGTERM');
    expect((await exitWithin(cli, EXIT_WITHIN_MS)).code).toBe(0);
  });

  it('exits 1 with a clear message when the port is taken', async () => {
    const blocker: Server = createNetServer();
    await new Promise<void>((resolve) => blocker.listen(0, '127.0.0.1', resolve));
    try {
      const port = (blocker.address() as { port: number }).port;
      const cli = run(['start', '--port', String(port), '--data-dir', dataDir]);
      expect((await exitWithin(cli, EXIT_WITHIN_MS)).code).toBe(1);
      expect(cli.stderr).toContain('in use');
      expect(cli.stderr).toContain('--port');
    } finally {
      await new Promise((resolve) => blocker.close(resolve));
    }
  });
});

describe('configuration errors exit 2 with a message and no stack trace', () => {
  it.each([
    [['start', '--production'], {}, 'HEADWAY_JWT_SECRET'],
    [['start', '--prot', '80'], {}, 'unknown option --prot (did you mean --port?)'],
    [['start', '--log-format', 'xml'], {}, '--log-format must be one of auto, pretty, json'],
    [['start'], { HEADWAY_PORT: 'abc' }, 'HEADWAY_PORT'],
    [['start'], { HEADWAY_SECRET: 'x' }, 'HEADWAY_SECRET'],
    [['start'], { HEADWAY_REDIS_URL: 'redis://localhost:6379' }, 'HEADWAY_POSTGRES_URL'],
    [['serve'], {}, 'unknown command serve'],
    [['wacth'], {}, 'unknown command wacth (did you mean watch?)'],
  ] as const)('headway %j with %j', async (args, env, expected) => {
    const cli = run([...args, '--data-dir', dataDir], { ...env });
    expect((await exitWithin(cli, EXIT_WITHIN_MS)).code).toBe(2);
    expect(cli.stderr).toContain(expected);
    expect(cli.stderr).not.toMatch(/^\s+at /m);
    expect(cli.stdout).toBe('');
  });

  it('names both missing production secrets', async () => {
    const cli = run(['start', '--production', '--data-dir', dataDir]);
    expect((await exitWithin(cli, EXIT_WITHIN_MS)).code).toBe(2);
    expect(cli.stderr).toContain('HEADWAY_JWT_SECRET');
    expect(cli.stderr).toContain('HEADWAY_API_KEYS');
  });
});

/** stderr as its non-empty lines. */
const lines = (text: string) => text.split('\n').filter((l) => l.trim() !== '');

describe('operator mistakes end start-up with one line and exit code 2', () => {
  it('a second hub on the same data directory is refused, naming the directory and the holder', async () => {
    const first = await startHub();
    const second = run(['start', '--port', '0', '--data-dir', dataDir]);
    expect((await exitWithin(second, EXIT_WITHIN_MS)).code).toBe(2);
    expect(lines(second.stderr)).toHaveLength(1);
    expect(second.stderr).toContain(dataDir);
    expect(second.stderr).toContain(String(first.cli.child.pid));
    expect(second.stdout).toBe('');
    // The first one is unaffected, and a hub killed without a shutdown does not block a restart.
    expect(first.cli.child.exitCode).toBeNull();
    first.cli.child.kill('SIGKILL');
    await first.cli.exited;
    const again = await startHub();
    again.cli.child.kill('SIGTERM');
    expect((await exitWithin(again.cli, EXIT_WITHIN_MS)).code).toBe(0);
  }, 60_000); // three hubs, one after the other

  it('a stale lock of a process that is gone is taken over', async () => {
    const gone = spawn(process.execPath, ['-e', '']);
    await new Promise((resolve) => gone.once('exit', resolve));
    writeFileSync(join(dataDir, 'headway.lock'), `${gone.pid}\n`);
    const { cli } = await startHub();
    expect(readFileSync(join(dataDir, 'headway.lock'), 'utf8').trim()).toBe(String(cli.child.pid));
    cli.child.kill('SIGTERM');
    expect((await exitWithin(cli, EXIT_WITHIN_MS)).code).toBe(0);
    expect(existsSync(join(dataDir, 'headway.lock'))).toBe(false);
  });

  it.each([
    ['a data directory under /proc', () => ['--data-dir', '/proc/headway-test']],
    ['a data directory that is /proc/self', () => ['--data-dir', '/proc/self']],
    [
      'an SQLite file that cannot be opened',
      () => {
        mkdirSync(join(dataDir, 'headway.db'));
        return ['--data-dir', dataDir];
      },
    ],
    ['an unknown durability', () => ['--data-dir', dataDir, '--durability', 'paranoid']],
    [
      '--durability with PostgreSQL',
      () => ['--data-dir', dataDir, '--durability', 'full', '--postgres', 'postgres://127.0.0.1/x'],
    ],
  ])('%s', async (_what, args) => {
    const cli = run(['start', '--port', '0', ...args()]);
    expect((await exitWithin(cli, EXIT_WITHIN_MS)).code).toBe(2);
    expect(lines(cli.stderr)).toHaveLength(1);
    expect(cli.stdout).toBe('');
  });

  it.skipIf(postgres.skip)('a PostgreSQL database that does not exist', async () => {
    const url = new URL(POSTGRES_URL);
    url.pathname = `/${uniqueName('hw_missing')}`;
    const cli = run(['start', '--port', '0', '--data-dir', dataDir, '--postgres', url.toString()]);
    expect((await exitWithin(cli, EXIT_WITHIN_MS)).code).toBe(2);
    expect(lines(cli.stderr)).toHaveLength(1);
    expect(cli.stderr).toContain(url.pathname.slice(1));
  });

  it('--durability full starts a hub', async () => {
    const { cli, url } = await startHub(['--durability', 'full']);
    expect((await fetch(`${url}/healthz`)).status).toBe(200);
    cli.child.kill('SIGTERM');
    expect((await exitWithin(cli, EXIT_WITHIN_MS)).code).toBe(0);
  });
});

describe('headway help and version', () => {
  it.each([
    { args: ['--help'] },
    { args: ['help'] },
    { args: ['start', '--help'] },
  ])('$args prints the usage', async ({ args }) => {
    const cli = run(args);
    expect((await exitWithin(cli, EXIT_WITHIN_MS)).code).toBe(0);
    expect(cli.stdout).toContain('Usage: headway <command>');
    expect(cli.stdout).toContain('HEADWAY_JWT_SECRET');
  });

  it.each([['--version'], ['version']])('%j prints the package version', async (arg) => {
    const pkg = JSON.parse(readFileSync(join(REPO_ROOT, 'packages/server/package.json'), 'utf8'));
    const cli = run([arg]);
    expect((await exitWithin(cli, EXIT_WITHIN_MS)).code).toBe(0);
    expect(cli.stdout.trim()).toBe(pkg.version);
  });
});

describe('headway start writes a banner or structured logs, never both', () => {
  it('writes the banner whole on --log-format pretty, log lines only after it, and no console snippet', async () => {
    const { cli, url } = await startHub();
    const out = cli.stdout;
    const banner = out.indexOf('Headway ');
    expect(banner).toBeGreaterThanOrEqual(0);
    // Lines before the banner would be log lines written meanwhile: there are none, and none is JSON.
    expect(out.slice(0, banner).trim()).toBe('');
    expect(out).not.toMatch(/^\{/m);
    expect(out).not.toContain('devtools');
    expect(out).not.toContain('new WebSocket(');
    expect(out).toContain(`headway watch hello --url ${url}`);
    cli.child.kill('SIGTERM');
    await exitWithin(cli, EXIT_WITHIN_MS);
    // The shutdown is logged after the banner, as a readable line.
    expect(cli.stdout.slice(cli.stdout.indexOf('Press Ctrl+C'))).toMatch(
      /^\d\d:\d\d:\d\d INFO {2}shutting down/m,
    );
  });

  it.each([
    [[]],
    [['--log-format', 'json']],
  ])('writes only JSON lines in a pipe (%j), the banner\'s facts in one "ready" record', async (flags) => {
    const cli = run(['start', '--port', '0', '--data-dir', dataDir, ...flags]);
    const [line] = await waitForStdout(cli, /^\{.*"msg":"ready".*\}$/m);
    const ready = JSON.parse(line) as Record<string, string>;
    expect(ready.url).toMatch(/^http:\/\/127\.0\.0\.1:\d+$/);
    expect(ready.mode).toBe('development');
    expect(ready.dashboard).toMatch(/#token=ey/);
    cli.child.kill('SIGTERM');
    await exitWithin(cli, EXIT_WITHIN_MS);
    const lines = cli.stdout.trim().split('\n');
    for (const l of lines) expect(() => JSON.parse(l), l).not.toThrow();
    expect(cli.stdout).not.toContain('Press Ctrl+C');
  });
});

describe('headway run and headway watch find the hub and say what fails in the same words', () => {
  /** A port where nothing listens: bound, then closed. */
  async function deadPort(): Promise<number> {
    const server: Server = createNetServer();
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    const { port } = server.address() as { port: number };
    await new Promise((resolve) => server.close(resolve));
    return port;
  }

  it('run prints the job id and the watch command before the output, with the key from --data-dir', async () => {
    const { cli: hub, url } = await startHub();
    const cli = run([
      'run',
      '--url',
      url,
      '--data-dir',
      dataDir,
      '--owner',
      'alice',
      '--',
      process.execPath,
      '-e',
      "console.error('from the command'); console.log('50%')",
    ]);
    expect((await exitWithin(cli, EXIT_WITHIN_MS)).code).toBe(0);
    const id = /^headway run: job (\S+); follow it with: headway watch (\S+) --url (\S+)$/m.exec(cli.stderr);
    expect(id, cli.stderr).not.toBeNull();
    expect(id![2]).toBe(id![1]);
    expect(id![3]).toBe(url);
    expect(cli.stderr.indexOf('headway run: job')).toBeLessThan(cli.stderr.indexOf('from the command'));

    // The command it printed works, with the same credentials found the same way.
    const watch = run(['watch', id![1]!, '--url', url], { HEADWAY_DATA_DIR: dataDir });
    expect((await exitWithin(watch, EXIT_WITHIN_MS)).code).toBe(0);
    expect(watch.stdout).toContain('completed');
    hub.child.kill('SIGTERM');
    await exitWithin(hub, EXIT_WITHIN_MS);
  }, 45_000);

  it('both say "invalid API key" for a wrong key, from the flag or the environment', async () => {
    const { cli: hub, url } = await startHub();
    const wrong = 'not-the-right-api-key';
    const runFlag = run(['run', '--url', url, '--api-key', wrong, '--owner', 'a', '--', 'true']);
    const watchFlag = run(['watch', 'any', '--url', url, '--api-key', wrong]);
    const runEnv = run(['run', '--url', url, '--owner', 'a', '--', 'true'], { HEADWAY_API_KEY: wrong });
    const watchEnv = run(['watch', 'any', '--url', url], { HEADWAY_API_KEY: wrong });
    expect((await exitWithin(runFlag, EXIT_WITHIN_MS)).code).toBe(1);
    expect((await exitWithin(watchFlag, EXIT_WITHIN_MS)).code).toBe(5);
    expect((await exitWithin(runEnv, EXIT_WITHIN_MS)).code).toBe(1);
    expect((await exitWithin(watchEnv, EXIT_WITHIN_MS)).code).toBe(5);
    expect(runFlag.stderr).toBe('headway run: invalid API key (from --api-key)\n');
    expect(watchFlag.stderr).toBe('headway watch: invalid API key (from --api-key)\n');
    expect(runEnv.stderr).toBe('headway run: invalid API key (from HEADWAY_API_KEY)\n');
    expect(watchEnv.stderr).toBe('headway watch: invalid API key (from HEADWAY_API_KEY)\n');
    // The hub says so too.
    const res = await fetch(`${url}/v1/jobs`, { headers: { authorization: `Bearer ${wrong}` } });
    expect(((await res.json()) as { error: { message: string } }).error.message).toBe('invalid API key');
    hub.child.kill('SIGTERM');
    await exitWithin(hub, EXIT_WITHIN_MS);
  }, 45_000);

  it('watch gives up with exit code 5 where nothing listens, as run does with 1, in the same words', async () => {
    const url = `http://127.0.0.1:${await deadPort()}`;
    const env = { HEADWAY_API_KEY: 'some-api-key-of-a-hub' };
    const watch = run(['watch', 'any', '--url', url], env);
    const runCli = run(['run', '--url', url, '--owner', 'a', '--', 'true'], env);
    expect((await exitWithin(watch, EXIT_WITHIN_MS)).code).toBe(5);
    expect((await exitWithin(runCli, EXIT_WITHIN_MS)).code).toBe(1);
    const words = `cannot reach the hub at ${url} (connection refused)`;
    expect(watch.stderr).toContain(`headway watch: ${words}`);
    expect(runCli.stderr).toContain(`headway run: ${words}`);
  }, 45_000);

  it('both default to http://127.0.0.1:7070 and say how to give credentials when there are none', async () => {
    const env = { HEADWAY_DATA_DIR: dataDir };
    const watch = run(['watch', 'any'], env);
    const runCli = run(['run', '--owner', 'a', '--', 'true'], env);
    expect((await exitWithin(watch, EXIT_WITHIN_MS)).code).toBe(2);
    expect((await exitWithin(runCli, EXIT_WITHIN_MS)).code).toBe(2);
    expect(watch.stderr).toMatch(
      /^headway watch: no credentials: pass --api-key, set HEADWAY_TOKEN or HEADWAY_API_KEY/,
    );
    expect(runCli.stderr).toMatch(/^headway run: no credentials: pass --api-key, set HEADWAY_API_KEY/);
    for (const command of ['run', 'watch']) {
      const help = run([command, '--help']);
      await exitWithin(help, EXIT_WITHIN_MS);
      expect(help.stdout).toContain(
        '--url <url>            the hub (default $HEADWAY_URL, else http://127.0.0.1:7070)',
      );
      expect(help.stdout).toContain('--api-key <key>');
    }
  }, 45_000);

  it.each([
    [['run', '--onwer', 'a', '--', 'true'], 'headway run: unknown option --onwer (did you mean --owner?)'],
    [['watch', 'x', '--ulr', 'http://h'], 'headway watch: unknown option --ulr (did you mean --url?)'],
    [['watch', 'x', '--api-kye=k'], 'headway watch: unknown option --api-kye (did you mean --api-key?)'],
  ])('%j suggests the nearest flag', async (args, expected) => {
    const cli = run(args);
    expect((await exitWithin(cli, EXIT_WITHIN_MS)).code).toBe(2);
    expect(cli.stderr).toContain(expected);
  });
});
