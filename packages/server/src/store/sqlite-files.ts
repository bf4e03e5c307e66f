/**
 * The SQLite file itself: created private to its owner, scrubbed after a
 * delete, and the errors that mean it cannot be used right now (as opposed to
 * a bug in a statement).
 */
import { closeSync, openSync } from 'node:fs';
import { setTimeout as sleep } from 'node:timers/promises';
import Database from 'better-sqlite3';
import { StoreConflictError, StoreUnavailableError } from './store.js';

/** Attempts, and the pause between them, of the truncating checkpoint after a delete. */
const SCRUB_ATTEMPTS = 500;
const SCRUB_RETRY_MS = 10;

/**
 * Codes (or code prefixes, for the extended `SQLITE_IOERR_*` family) that mean the
 * database cannot be used right now, as opposed to a bug in a statement.
 */
const UNAVAILABLE_CODES = [
  'SQLITE_BUSY',
  'SQLITE_LOCKED',
  'SQLITE_CANTOPEN',
  'SQLITE_IOERR',
  'SQLITE_FULL',
  'SQLITE_READONLY',
  'SQLITE_NOMEM',
  'SQLITE_PROTOCOL',
  'SQLITE_CORRUPT',
  'SQLITE_NOTADB',
];

/** Create the database file readable by its owner only; SQLite gives its -wal and -shm files the same mode. */
export function createPrivately(path: string): void {
  if (path === ':memory:' || path === '') return;
  try {
    closeSync(openSync(path, 'wx', 0o600));
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err;
  }
}

/** The store's error for a failed operation: unavailable when SQLite says the file cannot be used now. */
export function toStoreError(err: unknown, message: string): unknown {
  if (err instanceof StoreUnavailableError || err instanceof StoreConflictError) return err;
  const code = err instanceof Database.SqliteError ? err.code : undefined;
  if (code !== undefined && UNAVAILABLE_CODES.some((c) => code === c || code.startsWith(`${c}_`))) {
    return new StoreUnavailableError(`${message}: ${code}`, { cause: err });
  }
  return err;
}

/**
 * After a delete: copy the WAL into the database and truncate it (it still
 * holds the deleted rows' old pages), then give freed pages back to the file
 * system. The truncation waits its turn: another connection may be
 * checkpointing (the lock is then taken) or reading an older snapshot (the WAL
 * must stay until it is done), and it is tried again rather than waited for in
 * SQLite's busy handler, which would block the event loop.
 */
export async function scrub(db: Database.Database): Promise<void> {
  for (let attempt = 1; !truncateWal(db); attempt++) {
    if (attempt >= SCRUB_ATTEMPTS) {
      throw new StoreUnavailableError(
        'the WAL could not be truncated after a delete: another connection holds it',
      );
    }
    await sleep(SCRUB_RETRY_MS);
  }
  if (db.open) db.pragma('incremental_vacuum');
}

/** One truncating checkpoint without waiting for other connections: whether it was complete. */
function truncateWal(db: Database.Database): boolean {
  // A store closed meanwhile has checkpointed the WAL and removed it.
  if (!db.open) return true;
  const timeout = db.pragma('busy_timeout', { simple: true }) as number;
  db.pragma('busy_timeout = 0');
  try {
    const [result] = db.pragma('wal_checkpoint(TRUNCATE)') as { busy: number }[];
    return result?.busy === 0;
  } catch (err) {
    if ((err as { code?: string }).code === 'SQLITE_BUSY') return false;
    throw err;
  } finally {
    db.pragma(`busy_timeout = ${timeout}`);
  }
}
