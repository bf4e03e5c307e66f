/**
 * Why `headway start` could not start, said in one line: configuration and store
 * mistakes are the operator's to fix and exit with code 2; anything else exits 1.
 */
import { resolve } from 'node:path';
import { ConfigError } from './config.js';
import { DataDirLockedError } from './data-dir.js';
import type { HeadwayOptions } from './options.js';
import { StoreUnavailableError } from './store/store.js';

/** Exit code of a configuration error. */
export const EXIT_CONFIG = 2;

/** Report a failed start on stderr; the process's exit code. */
export function startFailed(err: unknown, options: HeadwayOptions): number {
  const code = (err as NodeJS.ErrnoException | null)?.code;
  const where = `${options.host}:${options.port}`;
  // The operator's to fix, like any configuration error: one line, exit code 2.
  if (err instanceof DataDirLockedError || err instanceof ConfigError) {
    process.stderr.write(`headway: ${err.message}\n`);
    return EXIT_CONFIG;
  }
  if (err instanceof StoreUnavailableError) {
    process.stderr.write(`headway: cannot open the store: ${storeProblem(err, options)}\n`);
    return EXIT_CONFIG;
  }
  if (code === 'EADDRINUSE') {
    process.stderr.write(
      `headway: cannot listen on ${where}: the address is in use (choose another with --port or HEADWAY_PORT)\n`,
    );
  } else if (code === 'EACCES' && (err as { syscall?: string }).syscall === 'listen') {
    process.stderr.write(`headway: cannot listen on ${where}: permission denied (use a port above 1023)\n`);
  } else if (code === 'EADDRNOTAVAIL' || code === 'ENOTFOUND') {
    process.stderr.write(
      `headway: cannot listen on ${where}: no such address (check --host or HEADWAY_HOST)\n`,
    );
  } else if (typeof (err as { path?: unknown } | null)?.path === 'string') {
    // A file-system error names its file (e.g. EACCES on the data directory): the stack adds nothing.
    process.stderr.write(`headway: failed to start: ${(err as Error).message}\n`);
  } else {
    const detail = err instanceof Error ? (err.stack ?? err.message) : String(err);
    process.stderr.write(`headway: failed to start: ${detail}\n`);
  }
  return 1;
}

/** What keeps the store from opening, in one line, with what to do about it. */
function storeProblem(err: StoreUnavailableError, options: HeadwayOptions): string {
  const cause = (err as { cause?: unknown }).cause as { code?: unknown; message?: unknown } | undefined;
  if (options.postgresUrl) {
    const where = describeServer(options.postgresUrl);
    if (cause?.code === '3D000') {
      const database = new URL(options.postgresUrl).pathname.slice(1) || 'postgres';
      return `PostgreSQL database "${decodeURIComponent(database)}" does not exist at ${where} (create it: createdb ${decodeURIComponent(database)}, see docs/operations.md)`;
    }
    return `PostgreSQL at ${where}: ${firstLine(err.message)}`;
  }
  const file = resolve(options.dataDir, 'headway.db');
  const reason = typeof cause?.message === 'string' ? cause.message : err.message;
  return `SQLite database ${file} cannot be opened: ${firstLine(reason)} (check --data-dir and its permissions)`;
}

function firstLine(text: string): string {
  return text.split('\n')[0]!.trim();
}

/** Host, port and path of a server URL, without its credentials. */
export function describeServer(url: string): string {
  try {
    const u = new URL(url);
    return `${u.host}${u.pathname === '/' ? '' : u.pathname}`;
  } catch {
    return '(invalid URL)';
  }
}
