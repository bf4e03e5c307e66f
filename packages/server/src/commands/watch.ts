/**
 * `headway watch`: live progress bars in the terminal, through @headway/client
 * in Node (the `ws` package as its WebSocket). On a terminal the bars are
 * redrawn in place; in a pipe or a log, one line is written per change.
 */
import {
  type ClientOptions,
  createClient,
  type HeadwayClient,
  type JobState,
  type TransportKind,
} from '@headway/client';
import { CloseCode, JOB_ID } from '@headway/protocol';
import WebSocket from 'ws';
import { unknownOption } from '../nearest-flag.js';
import {
  CONNECTION_HELP,
  type ConnectionFlags,
  type Credential,
  checkHub,
  credentialRefused,
  findCredential,
  hubUrl,
  missingCredential,
} from './hub-connection.js';
import { jobLine, truncate } from './watch-format.js';

export { jobLine, shortDuration, timeLeft } from './watch-format.js';

/** Exit codes of `headway watch`. */
export const WatchExit = {
  /** The job completed. */
  COMPLETED: 0,
  /** The job failed. */
  FAILED: 1,
  /** A usage error. */
  USAGE: 2,
  /** The job was cancelled. */
  CANCELLED: 3,
  /** No such job (or not visible with these credentials), or it was deleted. */
  NOT_FOUND: 4,
  /** The hub refused the credentials or the connection for good, or nothing answered at its address. */
  REFUSED: 5,
  /** Interrupted (Ctrl+C), as shells report SIGINT. */
  INTERRUPTED: 130,
} as const;

export const WATCH_HELP = `Usage: headway watch <job-id>
       headway watch --user <user>

Shows live progress in the terminal: one job until it ends (the exit code tells
how), or every job of a user, new ones included, until Ctrl+C. On a terminal
the bars are redrawn in place; otherwise one line is written per change.

Options:
  --user <user>          watch every job of this user
  --transport <list>     transports to try in order, comma-separated: ws, poll (default ws,poll)

${CONNECTION_HELP}

Credentials (the first one found): --api-key; HEADWAY_TOKEN, a browser token that
watches what it may see (--user must be its user); HEADWAY_API_KEY; the API key in
<data-dir>/secrets.json. An API key watches any job; with --user it mints tokens
for that user.

When nothing answers at the hub's address, or the hub refuses the credentials,
watch gives up at once (exit code 5). Once connected, it reconnects on its own
whenever the connection drops.

Exit codes: 0 completed, 1 failed, 3 cancelled, 4 not found or deleted,
5 credentials refused or hub unreachable, 2 usage error, 130 interrupted.
`;

export interface WatchIo {
  stdout: { write(chunk: string): unknown; isTTY?: boolean; columns?: number };
  stderr: { write(chunk: string): unknown };
  /** Ends watching with exit code 130; default: SIGINT and SIGTERM. */
  signal?: AbortSignal;
}

interface WatchArgs extends ConnectionFlags {
  job?: string;
  user?: string;
  transports?: TransportKind[];
}

class UsageError extends Error {}

const VALUE_FLAGS = new Set(['--user', '--url', '--api-key', '--transport', '--data-dir']);
const ALL_FLAGS = [...VALUE_FLAGS, '--help'];
/** Shortest time between two redraws on a terminal, ms. */
const REDRAW_MS = 100;
/** Lifetime of the tokens minted for `--user` with an API key, seconds; they are minted again before expiry. */
const MINTED_TOKEN_TTL = 3600;
const ACTIVE = new Set(['queued', 'running', 'paused']);

export function parseWatchArgs(argv: string[]): WatchArgs | 'help' {
  const args: WatchArgs = {};
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i]!;
    if (arg === '-h' || arg === '--help') return 'help';
    if (!arg.startsWith('-')) {
      if (args.job !== undefined) throw new UsageError(`unexpected argument ${arg}`);
      args.job = arg;
      continue;
    }
    const eq = arg.indexOf('=');
    const flag = eq === -1 ? arg : arg.slice(0, eq);
    if (!VALUE_FLAGS.has(flag)) throw new UsageError(unknownOption(flag, ALL_FLAGS));
    const value = eq === -1 ? argv[++i] : arg.slice(eq + 1);
    if (value === undefined || value === '') throw new UsageError(`${flag} needs a value`);
    if (flag === '--user') args.user = value;
    else if (flag === '--url') args.url = value;
    else if (flag === '--api-key') args.apiKey = value;
    else if (flag === '--data-dir') args.dataDir = value;
    else {
      const kinds = value.split(',');
      for (const k of kinds)
        if (k !== 'ws' && k !== 'poll') throw new UsageError(`--transport: unknown "${k}"`);
      args.transports = kinds as TransportKind[];
    }
  }
  if ((args.job === undefined) === (args.user === undefined)) {
    throw new UsageError('give a job id or --user <user> (one of them)');
  }
  if (args.job !== undefined && !JOB_ID.test(args.job)) {
    throw new UsageError('a job id is 1–128 letters, digits or ._:-');
  }
  return args;
}

/** The `headway watch` command; resolves with its exit code. */
export async function watch(
  argv: string[],
  env: NodeJS.ProcessEnv,
  io: WatchIo = { stdout: process.stdout, stderr: process.stderr },
): Promise<number> {
  let args: WatchArgs | 'help';
  try {
    args = parseWatchArgs(argv);
  } catch (err) {
    if (!(err instanceof UsageError)) throw err;
    io.stderr.write(`headway watch: ${err.message}\nRun "headway watch --help" for usage.\n`);
    return WatchExit.USAGE;
  }
  if (args === 'help') {
    io.stdout.write(WATCH_HELP);
    return 0;
  }
  const url = hubUrl(args, env);
  const found = findCredential(args, env, { tokens: true });
  if (!found) {
    io.stderr.write(`headway watch: ${missingCredential({ tokens: true })}\n`);
    return WatchExit.USAGE;
  }
  const token = credential(args, found, url, io);
  if (typeof token === 'number') return token;
  // A hub that never answered, or that refuses these credentials, is not waited for: reconnecting
  // is for a connection that was up and dropped.
  const check = await checkHub(url, found);
  if (!check.ok) {
    io.stderr.write(`headway watch: ${check.message}\n`);
    return WatchExit.REFUSED;
  }

  const client = createClient({
    url,
    token,
    WebSocket: WebSocket as unknown as ClientOptions['WebSocket'],
    transports: args.transports ?? ['ws', 'poll'],
    shared: false,
    network: null,
    visibility: null,
  });
  const view = new View(io, args.user === undefined);
  const own = io.signal ? null : new AbortController();
  const signal = io.signal ?? own!.signal;
  const stop = () => own?.abort();
  if (own) {
    process.once('SIGINT', stop);
    process.once('SIGTERM', stop);
  }
  try {
    return await new Promise<number>((resolve) => {
      signal.addEventListener('abort', () => resolve(WatchExit.INTERRUPTED), { once: true });
      if (signal.aborted) resolve(WatchExit.INTERRUPTED);
      let lastError = '';
      client.on('error', ({ error }) => {
        // The client retries on its own; say what fails, once per kind of failure.
        if (error.code !== lastError) view.note(`${error.code}: ${error.message}`);
        lastError = error.code;
      });
      client.on('state', ({ newState, reason, code }) => {
        if (newState === 'connected') lastError = '';
        view.connection(client, reason, code);
        if (newState === 'closed' && reason === 'stop') {
          const words =
            code === CloseCode.TOKEN_EXPIRED || code === CloseCode.TOKEN_INVALID
              ? credentialRefused(found, code === CloseCode.TOKEN_EXPIRED)
              : 'the hub refused the connection';
          io.stderr.write(`headway watch: ${words} (close code ${code})\n`);
          resolve(WatchExit.REFUSED);
        }
      });
      if (args.job !== undefined) watchJob(client, args.job, view, resolve);
      else watchUser(client, view);
    });
  } finally {
    view.finish();
    client.close();
    if (own) {
      process.off('SIGINT', stop);
      process.off('SIGTERM', stop);
    }
  }
}

function watchJob(client: HeadwayClient, id: string, view: View, done: (code: number) => void): void {
  const handle = client.job(id);
  const outcome = (s: JobState) =>
    s.status === 'completed'
      ? WatchExit.COMPLETED
      : s.status === 'failed'
        ? WatchExit.FAILED
        : s.status === 'cancelled'
          ? WatchExit.CANCELLED
          : null;
  handle.on('change', ({ state }) => {
    view.update(state);
    const code = outcome(state);
    if (code !== null) done(code);
  });
  handle.on('deleted', () => {
    view.note(`job ${id} was deleted`);
    done(WatchExit.NOT_FOUND);
  });
  handle.on('error', ({ error }) => {
    view.note(`${error.code}: ${error.message}`);
    done(WatchExit.NOT_FOUND);
  });
}

function watchUser(client: HeadwayClient, view: View): void {
  const jobs = client.jobs({ scope: 'user' });
  jobs.on('change', ({ state }) => view.update(state));
  jobs.on('remove', ({ id }) => view.remove(id));
  jobs.on('error', ({ error }) => view.note(`${error.code}: ${error.message}`));
}

/** A token, a token function, or the exit code of a usage error. */
function credential(
  args: WatchArgs,
  found: Credential,
  url: string,
  io: WatchIo,
): ClientOptions['token'] | number {
  if (found.kind === 'token') {
    const sub = subjectOf(found.value);
    if (args.user !== undefined && sub !== args.user) {
      io.stderr.write(`headway watch: ${found.source} is for user "${sub}", not "${args.user}"\n`);
      return WatchExit.USAGE;
    }
    return found.value;
  }
  if (args.user === undefined) return found.value;
  // An API key has no user of its own: watch as the user, with tokens minted for it.
  const user = args.user;
  const key = found.value;
  return async function mintToken() {
    const res = await fetch(`${url}/v1/tokens`, {
      method: 'POST',
      headers: { authorization: `Bearer ${key}`, 'content-type': 'application/json' },
      body: JSON.stringify({ user, ttl: MINTED_TOKEN_TTL }),
    });
    const body = (await res.json()) as { token?: string; error?: { code: string } };
    if (!res.ok || !body.token) throw new Error(body.error?.code ?? `HTTP ${res.status}`);
    return body.token;
  };
}

function subjectOf(token: string): string | undefined {
  try {
    const claims = JSON.parse(Buffer.from(token.split('.')[1] ?? '', 'base64url').toString('utf8'));
    return typeof claims.sub === 'string' ? claims.sub : undefined;
  } catch {
    return undefined;
  }
}

/** The terminal output: redrawn in place on a TTY, a line per change otherwise. */
class View {
  private readonly jobs = new Map<string, JobState>();
  private readonly printed = new Map<string, string>();
  private readonly tty: boolean;
  private readonly color: boolean;
  private status = 'connecting';
  private drawn = 0;
  private timer: NodeJS.Timeout | null = null;
  private last = 0;

  constructor(
    private readonly io: WatchIo,
    private readonly single: boolean,
  ) {
    this.tty = io.stdout.isTTY === true;
    this.color = this.tty && !process.env.NO_COLOR;
  }

  update(state: JobState): void {
    this.jobs.set(state.id, state);
    if (this.tty) {
      this.schedule();
      return;
    }
    const line = jobLine(state, { bar: 0, color: false, width: 0 });
    if (this.printed.get(state.id) === line) return;
    this.printed.set(state.id, line);
    this.io.stdout.write(`${line}\n`);
  }

  remove(id: string): void {
    this.jobs.delete(id);
    this.printed.delete(id);
    if (this.tty) this.schedule();
  }

  connection(client: HeadwayClient, reason: string, code: number | undefined): void {
    const state = client.state;
    this.status =
      state === 'connected'
        ? `connected (${client.transport})`
        : state === 'reconnecting'
          ? `reconnecting (${reason}${code ? ` ${code}` : ''})`
          : state;
    if (this.tty) this.schedule();
    // Closing is this command's own doing when it ends; only the changes worth knowing are told.
    else if (state === 'connected' || state === 'reconnecting')
      this.io.stderr.write(`headway watch: ${this.status}\n`);
  }

  note(text: string): void {
    this.clear();
    this.io.stderr.write(`headway watch: ${text}\n`);
    this.drawn = 0;
  }

  /** Last redraw, leaving the final state on screen. */
  finish(): void {
    if (this.timer) clearTimeout(this.timer);
    this.timer = null;
    if (this.tty && this.jobs.size > 0) this.draw();
  }

  private schedule(): void {
    if (this.timer) return;
    const wait = Math.max(0, this.last + REDRAW_MS - Date.now());
    this.timer = setTimeout(() => {
      this.timer = null;
      this.draw();
    }, wait);
  }

  private clear(): void {
    if (this.tty && this.drawn > 0) this.io.stdout.write(`\x1b[${this.drawn}F\x1b[J`);
  }

  private draw(): void {
    this.last = Date.now();
    const width = Math.max(40, this.io.stdout.columns ?? 80);
    const rows = [...this.jobs.values()].sort(
      (a, b) => +ACTIVE.has(b.status) - +ACTIVE.has(a.status) || (a.createdAt < b.createdAt ? 1 : -1),
    );
    const bar = Math.min(30, Math.max(10, width - 60));
    const lines = rows
      .slice(0, this.single ? 1 : 30)
      .map((s) => jobLine(s, { bar, color: this.color, width }));
    if (!this.single && rows.length > lines.length) lines.push(`… and ${rows.length - lines.length} more`);
    const dim = (t: string) => (this.color ? `\x1b[2m${t}\x1b[0m` : t);
    lines.push(dim(truncate(this.status, width)));
    let out = this.drawn > 0 ? `\x1b[${this.drawn}F` : '';
    for (const line of lines) out += `${line}\x1b[K\n`;
    this.io.stdout.write(`${out}\x1b[J`);
    this.drawn = lines.length;
  }
}
