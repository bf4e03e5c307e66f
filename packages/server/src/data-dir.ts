/**
 * The data directory: where it may be, and the lock that gives one process at a
 * time the embedded store in it.
 */
import { linkSync, mkdirSync, readFileSync, realpathSync, unlinkSync, writeFileSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { ConfigError } from './config-error.js';
import { ServerErrorCode } from './error-codes.js';

/** Name of the lock file in the data directory: the holder's pid and start time. */
export const LOCK_FILE = 'headway.lock';

/**
 * Kernel file systems that look like directories but hold no files: creating a
 * directory in `/proc` sends Node's recursive `mkdir` into an endless loop.
 */
const VIRTUAL_ROOTS = ['/proc', '/sys', '/dev'];

/** Refuse a data directory on a kernel file system, as a configuration error. */
export function checkDataDir(dir: string, setting = '--data-dir'): void {
  const path = realpathOfExistingPart(resolve(dir));
  const root = VIRTUAL_ROOTS.find((r) => path === r || path.startsWith(`${r}/`));
  if (root) {
    throw new ConfigError(
      setting,
      `${setting}: ${dir} is on a kernel file system (${root}); choose a directory on disk`,
    );
  }
}

/** The real path of the longest existing ancestor of `path`, with the rest appended. */
function realpathOfExistingPart(path: string): string {
  let head = path;
  let tail = '';
  for (;;) {
    try {
      return join(realpathSync(head), tail);
    } catch {
      const parent = dirname(head);
      if (parent === head) return path;
      tail = join(head.slice(parent.length + (parent.endsWith('/') ? 0 : 1)), tail);
      head = parent;
    }
  }
}

/** Another live process holds the data directory's lock. */
export class DataDirLockedError extends Error {
  readonly code = ServerErrorCode.DATA_DIR_LOCKED;
  constructor(
    /** The data directory, absolute. */
    readonly dir: string,
    /** Pid of the process holding it. */
    readonly pid: number,
  ) {
    super(`data directory ${dir} is in use by another Headway process (pid ${pid})`);
    this.name = 'DataDirLockedError';
  }
}

/** An exclusive hold on a data directory, released by `release()` (or by the process ending). */
export interface DataDirLock {
  readonly file: string;
  release(): void;
}

/**
 * Take the data directory for this process: create `headway.lock` holding the pid,
 * exclusively. A lock whose pid is no longer alive (a killed hub) is taken over;
 * one of a live process throws `DataDirLockedError`. SQLite would let two hubs
 * share the file, but each keeps its own cache of job states and seqs, so the
 * second would silently diverge from the first.
 */
export function lockDataDir(dir: string): DataDirLock {
  const absolute = resolve(dir);
  mkdirSync(absolute, { recursive: true, mode: 0o700 });
  const file = join(absolute, LOCK_FILE);
  // Written whole under another name, then linked into place: a lock file is never seen half-written.
  const tmp = join(absolute, `.${LOCK_FILE}.${process.pid}.tmp`);
  writeFileSync(tmp, `${process.pid}\n`, { mode: 0o600 });
  try {
    for (let attempt = 0; ; attempt++) {
      try {
        place(tmp, file);
        break;
      } catch (err) {
        if ((err as NodeJS.ErrnoException).code !== 'EEXIST' || attempt > 2) throw err;
      }
      const holder = readHolder(file);
      // Our own pid: held by this process, or left by an earlier process that had the same
      // pid (a container's hub is often pid 1 at every start): stale unless we hold it.
      const live = holder === process.pid ? heldHere.has(absolute) : holder !== null && isAlive(holder);
      if (live) throw new DataDirLockedError(absolute, holder!);
      // Stale (its process is gone): remove it and try again.
      try {
        unlinkSync(file);
      } catch {
        // Another process removed it first; the next link decides.
      }
    }
  } finally {
    unlinkSync(tmp);
  }
  heldHere.add(absolute);
  let released = false;
  return {
    file,
    release() {
      if (released) return;
      released = true;
      heldHere.delete(absolute);
      // Only our own lock: a directory taken over after a crash belongs to its new holder.
      if (readHolder(file) === process.pid) unlinkSync(file);
    },
  };
}

/** Data directories this process holds. */
const heldHere = new Set<string>();

/** Link `tmp` to `file` (EEXIST when it exists); without hard links, an exclusive create. */
function place(tmp: string, file: string): void {
  try {
    linkSync(tmp, file);
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    if (code !== 'EPERM' && code !== 'ENOTSUP' && code !== 'ENOSYS') throw err;
    writeFileSync(file, `${process.pid}\n`, { mode: 0o600, flag: 'wx' });
  }
}

function readHolder(file: string): number | null {
  try {
    const pid = Number.parseInt(readFileSync(file, 'utf8'), 10);
    return Number.isSafeInteger(pid) && pid > 0 ? pid : null;
  } catch {
    return null;
  }
}

function isAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    // EPERM: the process exists but belongs to another user.
    return (err as NodeJS.ErrnoException).code === 'EPERM';
  }
}
