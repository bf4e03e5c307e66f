/**
 * The SQLite file itself: created private to its owner, and the errors that
 * mean it cannot be used right now (as opposed to a bug in a statement).
 */
import { closeSync, openSync } from 'node:fs';
import Database from 'better-sqlite3';
import { StoreConflictError, StoreUnavailableError } from './store.js';

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
