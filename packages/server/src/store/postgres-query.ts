/**
 * Running one statement of the PostgreSQL store, and telling a database that
 * cannot be used right now (reported as `StoreUnavailableError`, answered 503)
 * from a transaction worth running again and from a bug in a statement.
 */
import type { PoolClient, QueryConfig, QueryResult, QueryResultRow } from 'pg';
import pg from 'pg';
import { StoreUnavailableError } from './store.js';

/**
 * SQLSTATE classes and codes that mean the database cannot be used right now, as
 * opposed to a bug in a statement: connection exceptions (08), bad credentials (28),
 * insufficient resources such as too many connections or a full disk (53),
 * operator intervention such as an admin shutdown or a cancelled statement (57),
 * I/O errors (58).
 */
const UNAVAILABLE_CLASSES = ['08', '28', '53', '57', '58'];
const UNAVAILABLE_CODES = new Set([
  '3D000', // the database does not exist
  '25006', // read-only transaction: connected to a standby, e.g. during a failover
  '55P03', // lock_timeout expired
  'XX001', // data corrupted
  'XX002', // index corrupted
]);

/** Aborted transactions that succeed when simply run again. */
export const RETRYABLE_CODES = new Set([
  '40P01', // deadlock detected
  '40001', // serialization failure
]);

/** Runs one statement, turning driver and connection failures into `StoreUnavailableError`. */
export async function query<R extends QueryResultRow = QueryResultRow>(
  client: PoolClient,
  statement: string | QueryConfig,
): Promise<QueryResult<R>> {
  try {
    return await client.query<R>(statement);
  } catch (err) {
    throw toStoreError(err);
  }
}

function toStoreError(err: unknown): unknown {
  if (err instanceof pg.DatabaseError) {
    const code = err.code ?? '';
    if (UNAVAILABLE_CODES.has(code) || UNAVAILABLE_CLASSES.includes(code.slice(0, 2))) {
      return unavailable(err);
    }
    return err;
  }
  // Everything the server reports is a DatabaseError; anything else from the driver is
  // the connection itself failing (socket closed, connection terminated, protocol error).
  return unavailable(err);
}

/** The error of a store that cannot be used, naming the driver's code and reason. */
export function unavailable(err: unknown): StoreUnavailableError {
  if (err instanceof StoreUnavailableError) return err;
  const code = (err as { code?: unknown } | null)?.code;
  const reason = err instanceof Error ? err.message || String(code ?? err.name) : String(err);
  return new StoreUnavailableError(
    `PostgreSQL store unavailable: ${typeof code === 'string' && !reason.includes(code) ? `${code} ` : ''}${reason}`,
    { cause: err },
  );
}
