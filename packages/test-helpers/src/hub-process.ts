/**
 * `headway start` in a process of its own, for the suites that run several hubs
 * or kill one: the compiled command on port 0 with the test secret and API key,
 * ready once its banner prints the URL.
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { join } from 'node:path';
import { REPO_ROOT } from './build.js';
import { TEST_API_KEY, TEST_JWT_SECRET } from './hub.js';
import { waitFor } from './wait-for.js';

const BIN = join(REPO_ROOT, 'packages/server/bin/headway.js');
/** Longest wait for a process's banner, ms. */
const START_TIMEOUT_MS = 20_000;
const URL_LINE = /^ {2}URL +(http:\/\/\S+)$/m;

export interface HubProcess {
  readonly child: ChildProcess;
  /** `http://127.0.0.1:<port>`; empty until the process is ready. */
  url: string;
  /** The native WebSocket endpoint; empty until the process is ready. */
  wsUrl: string;
  /** Everything it printed so far. */
  output(): string;
}

/**
 * Start a hub process with `flags` added to `start --port 0 --host 127.0.0.1`.
 * `track` gets the process as soon as it is spawned, so that a caller's cleanup
 * stops it even when it never becomes ready. Resolves once it serves.
 */
export async function spawnHubProcess(
  flags: readonly string[],
  track?: (p: HubProcess) => void,
): Promise<HubProcess> {
  const child = spawn(
    process.execPath,
    [
      BIN,
      'start',
      '--port',
      '0',
      '--host',
      '127.0.0.1',
      '--log-level',
      'warn',
      // The banner, for its URL line (a pipe gets JSON logs otherwise).
      '--log-format',
      'pretty',
      ...flags,
    ],
    {
      cwd: REPO_ROOT,
      env: {
        PATH: process.env.PATH,
        NO_COLOR: '1',
        HEADWAY_JWT_SECRET: TEST_JWT_SECRET,
        HEADWAY_API_KEYS: TEST_API_KEY,
      },
    },
  );
  let output = '';
  child.stdout?.setEncoding('utf8').on('data', (chunk: string) => (output += chunk));
  child.stderr?.setEncoding('utf8').on('data', (chunk: string) => (output += chunk));
  const p: HubProcess = { child, url: '', wsUrl: '', output: () => output };
  track?.(p);
  await waitFor(() => URL_LINE.test(output) || child.exitCode !== null, 'a hub process', START_TIMEOUT_MS);
  const url = URL_LINE.exec(output)?.[1];
  if (!url) throw new Error(`the hub did not start:\n${output}`);
  p.url = url;
  p.wsUrl = `${url.replace(/^http/, 'ws')}/v1/ws`;
  return p;
}
