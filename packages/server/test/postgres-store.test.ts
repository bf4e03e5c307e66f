import { randomBytes } from 'node:crypto';
import {
  dropSchema,
  jobWrite,
  POSTGRES_URL,
  postgresUrlFor,
  requirePostgres,
  runningJob as state,
  uniqueName,
  waitFor,
} from '@headway/test-helpers';
import pg from 'pg';
import { afterAll, afterEach, describe, expect, it, vi } from 'vitest';
import { LATEST_VERSION, migrations } from '../src/store/migrations.js';
import { PostgresStore, type PostgresStoreOptions } from '../src/store/postgres.js';
import { type JobWrite, StoreConflictError, StoreUnavailableError } from '../src/store/store.js';
import { storeConformance } from './store-conformance.js';

/** Nothing listens on port 1: connecting is refused at once. */
const UNREACHABLE_URL = 'postgres://postgres@127.0.0.1:1/postgres';

const postgres = await requirePostgres();

/** A schema of its own for every store under test, so that test files and workers never share tables. */
function uniqueSchema(): string {
  return uniqueName('hw_test');
}

let admin: pg.Pool | null = null;
function adminPool(): pg.Pool {
  if (admin === null) {
    admin = new pg.Pool({ connectionString: POSTGRES_URL, max: 2 });
    admin.on('error', () => {});
  }
  return admin;
}

afterAll(async () => {
  await admin?.end();
  admin = null;
});

/**
 * Records every statement of this process that PostgreSQL aborted as a deadlock
 * victim (40P01), until `stop`; the caller still gets the error as before.
 */
function watchDeadlocks(): { seen: string[]; stop(): void } {
  const seen: string[] = [];
  const original = pg.Client.prototype.query;
  const spy = vi.spyOn(pg.Client.prototype, 'query').mockImplementation(function observedQuery(
    this: pg.Client,
    ...args: unknown[]
  ) {
    const result = (original as (...a: unknown[]) => unknown).apply(this, args);
    if (result instanceof Promise) {
      result.catch((err: { code?: string; message?: string }) => {
        if (err?.code === '40P01') seen.push(err.message ?? '40P01');
      });
    }
    return result as never;
  });
  return { seen, stop: () => spy.mockRestore() };
}

/** A write by `writer`, whose name its events and state carry as their message. */
function write(id: string, prevSeq: number, seq: number, writer = 'w'): JobWrite {
  return jobWrite(id, prevSeq, seq, writer);
}

describe.skipIf(postgres.skip)(postgres.title('PostgreSQL'), () => {
  storeConformance('PostgresStore conformance', async () => {
    const schema = uniqueSchema();
    const store = new PostgresStore({ connectionString: POSTGRES_URL, schema, poolSize: 4 });
    return {
      store,
      cleanup: async () => {
        await store.close();
        await dropSchema(schema);
      },
    };
  });

  describe('PostgresStore', () => {
    const stores: PostgresStore[] = [];
    const schemas = new Set<string>();

    afterEach(async () => {
      for (const s of stores.splice(0)) await s.close();
      for (const schema of schemas) await dropSchema(schema);
      schemas.clear();
    });

    /** A store like one hub process: its own pool on the shared database. */
    function make(options: Partial<PostgresStoreOptions> = {}): PostgresStore {
      const schema = options.schema ?? uniqueSchema();
      schemas.add(schema);
      const store = new PostgresStore({ connectionString: POSTGRES_URL, poolSize: 4, ...options, schema });
      stores.push(store);
      return store;
    }

    async function open(options: Partial<PostgresStoreOptions> = {}): Promise<PostgresStore> {
      const store = make(options);
      await store.migrate();
      return store;
    }

    it('creates its tables in the configured schema', async () => {
      const store = await open();
      const { rows } = await adminPool().query<{ table_name: string }>(
        'SELECT table_name FROM information_schema.tables WHERE table_schema = $1 ORDER BY table_name',
        [store.schema],
      );
      expect(rows.map((r) => r.table_name)).toEqual([
        'events',
        'idempotency_keys',
        'jobs',
        'kind_summaries',
        'schema_migrations',
        'tombstones',
        'webhook_deliveries',
        'webhooks',
      ]);
    });

    it('keeps schemas apart', async () => {
      const a = await open();
      const b = await open();
      await a.commit([write('only-a', 0, 1)]);
      expect(await b.getJob('only-a')).toBeNull();
      expect((await a.getJob('only-a'))?.seq).toBe(1);
    });

    it('keeps data across close and reopen', async () => {
      const first = await open();
      await first.commit([{ ...write('p1', 0, 2), keys: [{ key: 'k', seq: 2 }] }]);
      await first.close();

      const second = await open({ schema: first.schema });
      expect(await second.getJob('p1')).toEqual(state('p1', 2, { message: 'w' }));
      expect((await second.getEvents('p1', 0, 10)).map((e) => e.seq)).toEqual([1, 2]);
      expect(await second.findKeys('p1', ['k'])).toEqual(new Map([['k', 2]]));
      await second.commit([write('p1', 2, 3)]);
      expect((await second.getJob('p1'))?.seq).toBe(3);
    });

    it('migrates idempotently and records each version once', async () => {
      const store = await open();
      await store.migrate();
      await store.migrate();
      const { rows } = await adminPool().query<{ version: number }>(
        `SELECT version FROM ${pg.escapeIdentifier(store.schema)}.schema_migrations ORDER BY version`,
      );
      expect(rows.map((r) => r.version)).toEqual(migrations.map((m) => m.version));
      expect(rows.at(-1)?.version).toBe(LATEST_VERSION);
    });

    it('is safe when several processes migrate the same fresh schema at once', async () => {
      for (let round = 0; round < 3; round++) {
        const schema = uniqueSchema();
        const processes = [make({ schema }), make({ schema }), make({ schema })];
        await Promise.all(processes.map((p) => p.migrate()));
        const { rows } = await adminPool().query<{ version: number }>(
          `SELECT version FROM ${pg.escapeIdentifier(schema)}.schema_migrations ORDER BY version`,
        );
        expect(rows.map((r) => r.version)).toEqual(migrations.map((m) => m.version));
        await processes[0].commit([write('m', 0, 1)]);
        expect((await processes[2].getJob('m'))?.seq).toBe(1);
      }
    });

    it('fills the search columns of jobs stored before them', async () => {
      // A schema as the first migration left it, with one job.
      const schema = uniqueSchema();
      schemas.add(schema);
      const client = await adminPool().connect();
      const job = jobWrite('legacy-1', 0, 3).state;
      Object.assign(job, {
        name: 'Transcode Lecture.mp4',
        kind: 'transcode',
        createdAt: '2024-05-01T11:00:00.250Z',
      });
      try {
        await client.query(`CREATE SCHEMA ${pg.escapeIdentifier(schema)}`);
        await client.query(`SET search_path TO ${pg.escapeIdentifier(schema)}`);
        await client.query(migrations[0]!.postgres);
        await client.query(
          'CREATE TABLE schema_migrations (version INTEGER PRIMARY KEY, name TEXT NOT NULL, applied_at BIGINT NOT NULL)',
        );
        await client.query('INSERT INTO schema_migrations VALUES (1, $1, 0)', [migrations[0]!.name]);
        await client.query(
          `INSERT INTO jobs (id, owner, parent, status, seq, updated_at, finished_at, state)
           VALUES ($1, $2, NULL, $3, 3, $4, NULL, $5)`,
          [job.id, job.owner, job.status, Date.parse(job.updatedAt), JSON.stringify(job)],
        );
      } finally {
        await client.query('RESET search_path');
        client.release();
      }
      const store = make({ schema });
      await store.migrate();
      expect((await store.listJobs({ limit: 10, search: 'lecture' })).jobs.map((j) => j.id)).toEqual([
        'legacy-1',
      ]);
      expect((await store.listJobs({ limit: 10, kind: 'transcode' })).jobs).toHaveLength(1);
      const created = Date.parse(job.createdAt);
      expect((await store.listJobs({ limit: 10, createdAfter: created })).jobs).toHaveLength(1);
      expect((await store.listJobs({ limit: 10, createdAfter: created + 1 })).jobs).toHaveLength(0);
    });

    it('refuses a schema written by a newer Headway', async () => {
      const store = await open();
      await adminPool().query(
        `INSERT INTO ${pg.escapeIdentifier(store.schema)}.schema_migrations (version, name, applied_at) VALUES ($1, $2, $3)`,
        [LATEST_VERSION + 1, 'future', Date.now()],
      );
      await expect(make({ schema: store.schema }).migrate()).rejects.toThrow(/newer/);
    });

    it('lets exactly one of two processes extend a job from the same seq', async () => {
      const a = await open();
      const b = await open({ schema: a.schema });
      await a.commit([write('race', 0, 1)]);
      for (let seq = 1; seq <= 20; seq++) {
        const results = await Promise.allSettled([
          a.commit([write('race', seq, seq + 1, 'a')]),
          b.commit([write('race', seq, seq + 1, 'b')]),
        ]);
        const won = results.filter((r) => r.status === 'fulfilled');
        const lost = results.filter((r) => r.status === 'rejected');
        expect(won).toHaveLength(1);
        expect(lost).toHaveLength(1);
        expect(lost[0].reason).toBeInstanceOf(StoreConflictError);
        expect((lost[0].reason as StoreConflictError).jobs).toEqual(['race']);
        const winner = results[0].status === 'fulfilled' ? 'a' : 'b';
        const job = await b.getJob('race');
        expect(job?.seq).toBe(seq + 1);
        expect(job?.message).toBe(winner);
        expect((await a.getEvents('race', seq, 10)).map((e) => e.data)).toEqual([
          { percent: seq + 1, message: winner },
        ]);
      }
      // No fork: one event per seq, gapless.
      expect((await a.getEvents('race', 0, 100)).map((e) => e.seq)).toEqual(
        Array.from({ length: 21 }, (_, i) => i + 1),
      );
    });

    it('lets exactly one of two processes create the same job', async () => {
      const a = await open();
      const b = await open({ schema: a.schema });
      for (let i = 0; i < 10; i++) {
        const id = `new-${i}`;
        const results = await Promise.allSettled([
          a.commit([write(id, 0, 2, 'a')]),
          b.commit([write(id, 0, 2, 'b')]),
        ]);
        expect(results.filter((r) => r.status === 'fulfilled')).toHaveLength(1);
        const lost = results.find((r) => r.status === 'rejected');
        expect(lost?.reason).toBeInstanceOf(StoreConflictError);
        const winner = results[0].status === 'fulfilled' ? 'a' : 'b';
        expect((await a.getEvents(id, 0, 10)).map((e) => (e.data as { message: string }).message)).toEqual([
          winner,
          winner,
        ]);
      }
    });

    it('resolves crossing batches over the same jobs without a fork', async () => {
      const a = await open();
      const b = await open({ schema: a.schema });
      const ids = Array.from({ length: 12 }, (_, i) => `x${String(i).padStart(2, '0')}`);
      await a.commit(ids.map((id) => write(id, 0, 1)));
      for (let seq = 1; seq <= 10; seq++) {
        const forward = ids.map((id) => write(id, seq, seq + 1, 'a'));
        const backward = [...ids].reverse().map((id) => write(id, seq, seq + 1, 'b'));
        const results = await Promise.allSettled([a.commit(forward), b.commit(backward)]);
        expect(results.filter((r) => r.status === 'fulfilled')).toHaveLength(1);
        const lost = results.find((r) => r.status === 'rejected')?.reason;
        expect(lost).toBeInstanceOf(StoreConflictError);
        expect([...(lost as StoreConflictError).jobs].sort()).toEqual(ids);
        const winner = results[0].status === 'fulfilled' ? 'a' : 'b';
        for (const job of await a.getJobs(ids)) {
          expect(job.seq).toBe(seq + 1);
          expect(job.message).toBe(winner);
        }
      }
      for (const id of ids) {
        expect((await b.getEvents(id, 0, 100)).map((e) => e.seq)).toEqual(
          Array.from({ length: 11 }, (_, i) => i + 1),
        );
      }
    });

    it('locks jobs in one order, so crossing batches wait for each other instead of deadlocking', async () => {
      // PostgreSQL breaks a deadlock by aborting one transaction with 40P01, which the
      // store runs again unnoticed: every statement's failure is watched for that code.
      // A short deadlock_timeout makes PostgreSQL look for a cycle soon after a wait begins.
      const app = `hw_lock_${randomBytes(4).toString('hex')}`;
      const connectionString = `${postgresUrlFor(app)}&options=${encodeURIComponent('-c deadlock_timeout=50ms')}`;
      const deadlocks = watchDeadlocks();
      const a = await open({ connectionString });
      const b = await open({ connectionString, schema: a.schema });
      const table = `${pg.escapeIdentifier(a.schema)}.jobs`;
      const ids = Array.from({ length: 12 }, (_, i) => `x${String(i).padStart(2, '0')}`);
      await a.commit(ids.map((id) => write(id, 0, 1)));
      // Enough other jobs that PostgreSQL reaches a batch's rows through the primary key,
      // in the order the batch lists them, rather than by scanning the table in its
      // physical order (which would hide a missing lock order).
      await a.commit(Array.from({ length: 5000 }, (_, i) => write(`filler-${i}`, 0, 1)));
      await adminPool().query(`ANALYZE ${table}`);

      // Another session holds the middle job, so that both batches are mid-way through
      // their rows when it lets go: one from the front, one from the back.
      const holder = await adminPool().connect();
      let results: PromiseSettledResult<void>[];
      try {
        await holder.query('BEGIN');
        await holder.query(`SELECT 1 FROM ${table} WHERE id = 'x05' FOR UPDATE`);
        const forward = a.commit(ids.map((id) => write(id, 1, 2, 'a')));
        const backward = b.commit([...ids].reverse().map((id) => write(id, 1, 2, 'b')));
        const settled = Promise.allSettled([forward, backward]);
        await waitFor(async () => {
          const { rows } = await adminPool().query<{ n: number }>(
            "SELECT count(*)::int AS n FROM pg_stat_activity WHERE application_name = $1 AND wait_event_type = 'Lock'",
            [app],
          );
          return rows[0].n >= 2;
        }, 'the two commits to wait for the held row');
        await holder.query('COMMIT');
        results = await settled;
      } finally {
        // Lets go of the row even when the test failed before the COMMIT.
        await holder.query('ROLLBACK').catch(() => {});
        holder.release();
        deadlocks.stop();
      }
      expect(deadlocks.seen).toEqual([]);
      expect(results.filter((r) => r.status === 'fulfilled')).toHaveLength(1);
      const lost = results.find((r) => r.status === 'rejected')?.reason;
      expect(lost).toBeInstanceOf(StoreConflictError);
      expect([...(lost as StoreConflictError).jobs].sort()).toEqual(ids);
      const winner = results[0].status === 'fulfilled' ? 'a' : 'b';
      for (const job of await a.getJobs(ids)) expect(job.message).toBe(winner);
    });

    it('writes a large batch of awkward strings in one commit', async () => {
      const store = await open();
      const awkward = [
        '"quoted"',
        'back\\slash',
        '{a,b}',
        'NULL',
        '',
        ' spaced ',
        'ünïcödé ✓ 🎬',
        "it's",
        'a\nb\tc',
      ];
      const writes: JobWrite[] = [];
      for (let j = 0; j < 50; j++) {
        const id = `batch-${j}-${awkward[j % awkward.length]}`;
        const w = write(id, 0, 20);
        w.events = w.events.map((e, i) => ({ ...e, data: { message: awkward[i % awkward.length], n: i } }));
        w.keys = awkward.map((key, i) => ({ key, seq: i + 1 }));
        w.state = {
          ...w.state,
          metadata: { tags: awkward },
          parent: j === 0 ? null : awkward[j % awkward.length],
        };
        writes.push(w);
      }
      await store.commit(writes);
      for (const w of writes) {
        expect(await store.getJob(w.state.id)).toEqual(w.state);
        expect(await store.getEvents(w.state.id, 0, 100)).toEqual(w.events);
        expect(await store.findKeys(w.state.id, awkward)).toEqual(new Map(awkward.map((k, i) => [k, i + 1])));
      }
    });

    it('returns getJobs in the order asked, without repeats', async () => {
      const store = await open();
      await store.commit([write('a', 0, 1), write('b', 0, 1), write('c', 0, 1)]);
      expect((await store.getJobs(['c', 'missing', 'a', 'c'])).map((j) => j.id)).toEqual(['c', 'a']);
    });

    it('matches nothing with an empty status list and orders ids bytewise', async () => {
      const store = await open();
      await store.commit([write('B', 0, 1), write('a', 0, 1), write('_', 0, 1)]);
      expect((await store.listJobs({ limit: 10, status: [] })).jobs).toEqual([]);
      // Bytewise, descending: 'a' (0x61) > '_' (0x5f) > 'B' (0x42), whatever the database collation.
      expect((await store.listJobs({ limit: 10 })).jobs.map((j) => j.id)).toEqual(['a', '_', 'B']);
      const first = await store.listJobs({ limit: 1 });
      expect((await store.listJobs({ limit: 10, cursor: first.next })).jobs.map((j) => j.id)).toEqual([
        '_',
        'B',
      ]);
    });

    it('rejects a malformed cursor', async () => {
      const store = await open();
      await expect(store.listJobs({ limit: 10, cursor: 'not-a-cursor' })).rejects.toMatchObject({
        code: 'HW_ERR_INVALID_VALUE',
      });
    });

    it('rejects contradictory options at construction', () => {
      expect(() => new PostgresStore({ connectionString: '' })).toThrow(TypeError);
      expect(() => new PostgresStore({ connectionString: POSTGRES_URL, schema: '' })).toThrow(TypeError);
      expect(() => new PostgresStore({ connectionString: POSTGRES_URL, schema: 'x'.repeat(64) })).toThrow(
        TypeError,
      );
      expect(() => new PostgresStore({ connectionString: POSTGRES_URL, poolSize: 0 })).toThrow(TypeError);
    });

    it('reports an unreachable database as unavailable', async () => {
      const store = new PostgresStore({ connectionString: UNREACHABLE_URL });
      stores.push(store);
      await expect(store.migrate()).rejects.toBeInstanceOf(StoreUnavailableError);
      await expect(store.commit([write('x', 0, 1)])).rejects.toBeInstanceOf(StoreUnavailableError);
      await expect(store.getJob('x')).rejects.toMatchObject({ code: 'HW_STORE_UNAVAILABLE' });
      await expect(store.listJobs({ limit: 10 })).rejects.toBeInstanceOf(StoreUnavailableError);
      await expect(store.sweep({ eventsBefore: 0, jobsBefore: 0, batchSize: 10 })).rejects.toBeInstanceOf(
        StoreUnavailableError,
      );
      expect(await store.ping()).toBe(false);
    });

    it('reports a closed store as unavailable', async () => {
      const store = await open();
      expect(await store.ping()).toBe(true);
      await store.close();
      await expect(store.getJob('x')).rejects.toBeInstanceOf(StoreUnavailableError);
      await expect(store.commit([write('x', 0, 1)])).rejects.toBeInstanceOf(StoreUnavailableError);
      expect(await store.ping()).toBe(false);
    });

    it('survives its idle connections being terminated by the server', async () => {
      const appName = `hw_kill_${randomBytes(4).toString('hex')}`;
      const store = await open({ connectionString: postgresUrlFor(appName) });
      await store.commit([write('k', 0, 1)]);
      const { rows } = await adminPool().query<{ killed: boolean }>(
        'SELECT pg_terminate_backend(pid) AS killed FROM pg_stat_activity WHERE application_name = $1',
        [appName],
      );
      expect(rows.length).toBeGreaterThan(0);
      // Give the pool time to see its connections close; an unhandled 'error' would fail the run.
      await new Promise((resolve) => setTimeout(resolve, 200));
      expect((await store.getJob('k'))?.seq).toBe(1);
      expect(await store.ping()).toBe(true);
    });
  });
});
