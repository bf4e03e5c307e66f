/**
 * The connections of the PostgreSQL store: a `pg` pool whose connections use the
 * store's schema, statements and transactions run again when PostgreSQL aborted
 * them only to break a deadlock, and failures of the connection itself reported
 * as `StoreUnavailableError` rather than crashing the process.
 */
import type { PoolClient, QueryConfig, QueryResult, QueryResultRow } from 'pg';
import pg from 'pg';
import { query, RETRYABLE_CODES, unavailable } from './postgres-query.js';
import { StoreUnavailableError } from './store.js';

/** How long acquiring a connection may take (connecting, or waiting for a busy pool) before the store reports itself unavailable. */
const CONNECT_TIMEOUT_MS = 5000;
/** An idle pooled connection is closed after this long. */
const IDLE_TIMEOUT_MS = 30_000;
/** Attempts of one transaction when PostgreSQL aborts it as a deadlock victim or serialization failure. */
const MAX_TX_ATTEMPTS = 3;

/** Checked by `PostgresStore`, which names them in its own options. */
export interface PostgresPoolOptions {
  connectionString: string;
  schema: string;
  poolSize: number;
}

/** A pool of connections to one schema. */
export class PostgresPool {
  private readonly pool: pg.Pool;
  private readonly schema: string;
  /** Connections whose `search_path` has been set. */
  private readonly ready = new WeakSet<PoolClient>();
  private ending: Promise<void> | null = null;
  /** True once `close()` was called: nothing more runs. */
  closed = false;

  constructor(o: PostgresPoolOptions) {
    this.schema = o.schema;
    this.pool = new pg.Pool({
      connectionString: o.connectionString,
      max: o.poolSize,
      connectionTimeoutMillis: CONNECT_TIMEOUT_MS,
      idleTimeoutMillis: IDLE_TIMEOUT_MS,
      // Lets the kernel notice a peer that vanished without closing the socket.
      keepAlive: true,
    });
    // An idle pooled connection that breaks (server restart, admin termination, a
    // network cut) is emitted here after the pool has already discarded it. Without a
    // listener the 'error' event would crash the process; the next query simply opens
    // a new connection, or reports the store unavailable.
    this.pool.on('error', () => {});
    // A connection can also report its failure after it left the pool — released
    // with an error while the server's termination notice (57P01) was still in
    // flight — when neither the pool's nor a checkout's listener is attached. Every
    // connection keeps a listener of its own for its whole life; the failure itself
    // has already reached the query that met it, or the pool.
    this.pool.on('connect', (client) => {
      client.on('error', () => {});
    });
  }

  /** Closes every connection; idempotent. */
  async close(): Promise<void> {
    this.closed = true;
    this.ending ??= this.pool.end().catch(() => {
      // The pool is unusable either way; a failure to say goodbye to the server is not the caller's problem.
    });
    await this.ending;
  }

  /** One statement in its own implicit transaction. */
  run<R extends QueryResultRow = QueryResultRow>(statement: string | QueryConfig): Promise<QueryResult<R>> {
    return this.retrying(() => this.withClient((c) => query<R>(c, statement)));
  }

  /** `fn` between BEGIN and COMMIT; any error rolls back and is rethrown. */
  transaction<T>(fn: (client: PoolClient) => Promise<T>): Promise<T> {
    return this.retrying(() =>
      this.withClient(async (c) => {
        await query(c, 'BEGIN');
        let result: T;
        try {
          result = await fn(c);
        } catch (err) {
          // A failed ROLLBACK means the connection is gone; `withClient` then discards it.
          await query(c, 'ROLLBACK');
          throw err;
        }
        await query(c, 'COMMIT');
        return result;
      }),
    );
  }

  /** Runs `fn` again when PostgreSQL aborted it only to break a deadlock or a serialization conflict. */
  private async retrying<T>(fn: () => Promise<T>): Promise<T> {
    for (let attempt = 1; ; attempt++) {
      try {
        return await fn();
      } catch (err) {
        if (
          attempt >= MAX_TX_ATTEMPTS ||
          !(err instanceof pg.DatabaseError && RETRYABLE_CODES.has(err.code ?? ''))
        ) {
          throw err;
        }
      }
    }
  }

  /** Checks a connection out of the pool for `fn`, with the schema as its search path. */
  private async withClient<T>(fn: (client: PoolClient) => Promise<T>): Promise<T> {
    if (this.closed) throw new StoreUnavailableError('the PostgreSQL store is closed');
    let client: PoolClient;
    try {
      client = await this.pool.connect();
    } catch (err) {
      throw unavailable(err);
    }
    // A checked-out connection has no pool listener: one that breaks between two
    // queries would otherwise emit an unhandled 'error'.
    let broken: Error | undefined;
    const onError = (err: Error) => {
      broken = err;
    };
    client.on('error', onError);
    try {
      if (!this.ready.has(client)) {
        // Set per connection rather than through the startup `options` parameter,
        // which a connection string's own `options` would silently replace.
        await query(client, `SET search_path TO ${pg.escapeIdentifier(this.schema)}`);
        this.ready.add(client);
      }
      return await fn(client);
    } catch (err) {
      if (err instanceof StoreUnavailableError) broken ??= err;
      throw err;
    } finally {
      client.off('error', onError);
      // Releasing with an error removes the connection from the pool instead of reusing it.
      client.release(broken);
    }
  }
}
