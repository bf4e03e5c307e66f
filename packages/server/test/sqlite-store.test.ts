import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { runningJob as state, jobWrite as write } from '@headway/test-helpers';
import Database from 'better-sqlite3';
import { afterEach, describe, expect, it } from 'vitest';
import { LATEST_VERSION, migrations } from '../src/store/migrations.js';
import { SqliteStore } from '../src/store/sqlite.js';
import { StoreConflictError, StoreUnavailableError } from '../src/store/store.js';
import { storeConformance } from './store-conformance.js';

function tempDir(): string {
  return fs.mkdtempSync(path.join(os.tmpdir(), 'headway-sqlite-'));
}

function conformance(name: string, logLimit?: number): void {
  storeConformance(name, async () => {
    const dir = tempDir();
    const store = new SqliteStore({ path: path.join(dir, 'headway.db'), logLimit });
    return {
      store,
      cleanup: async () => {
        await store.close();
        fs.rmSync(dir, { recursive: true, force: true });
      },
    };
  });
}

conformance('SqliteStore conformance');
// Every commit first moves most of what the ones before it left in the log, so
// reads find each job partly moved and partly waiting.
conformance('SqliteStore conformance, moving events at every commit', 3);

describe('SqliteStore', () => {
  const dirs: string[] = [];
  const stores: SqliteStore[] = [];

  afterEach(async () => {
    for (const s of stores.splice(0)) await s.close();
    for (const d of dirs.splice(0)) fs.rmSync(d, { recursive: true, force: true });
  });

  async function open(file: string): Promise<SqliteStore> {
    const store = new SqliteStore({ path: file });
    stores.push(store);
    await store.migrate();
    return store;
  }

  function dbFile(): string {
    const dir = tempDir();
    dirs.push(dir);
    return path.join(dir, 'headway.db');
  }

  it('keeps data across close and reopen', async () => {
    const file = dbFile();
    const first = await open(file);
    await first.commit([{ ...write('p1', 0, 2), keys: [{ key: 'k', seq: 2 }] }]);
    await first.close();

    const second = await open(file);
    expect(await second.getJob('p1')).toEqual(state('p1', 2));
    expect((await second.getEvents('p1', 0, 10)).map((e) => e.seq)).toEqual([1, 2]);
    expect(await second.findKeys('p1', ['k'])).toEqual(new Map([['k', 2]]));
    await second.commit([write('p1', 2, 3)]);
    expect((await second.getJob('p1'))?.seq).toBe(3);
  });

  it('runs in WAL mode', async () => {
    const file = dbFile();
    await open(file);
    const probe = new Database(file, { readonly: true });
    try {
      expect(probe.pragma('journal_mode', { simple: true })).toBe('wal');
    } finally {
      probe.close();
    }
  });

  it('migrates idempotently and records each version once', async () => {
    const file = dbFile();
    const store = await open(file);
    await store.migrate();
    await store.migrate();
    await store.commit([write('m1', 0, 1)]);
    await store.close();
    await open(file);

    const probe = new Database(file, { readonly: true });
    try {
      const versions = probe.prepare('SELECT version FROM schema_migrations ORDER BY version').pluck().all();
      expect(versions).toEqual(migrations.map((m) => m.version));
      expect(versions.at(-1)).toBe(LATEST_VERSION);
    } finally {
      probe.close();
    }
  });

  it('fills the search columns of jobs stored before them', async () => {
    const file = dbFile();
    // A database as the first schema left it, with one job.
    const db = new Database(file);
    db.exec(migrations[0]!.sqlite);
    db.exec(
      'CREATE TABLE schema_migrations (version INTEGER PRIMARY KEY, name TEXT NOT NULL, applied_at INTEGER NOT NULL)',
    );
    db.prepare('INSERT INTO schema_migrations VALUES (1, ?, 0)').run(migrations[0]!.name);
    const job = state('legacy-1', 3, {
      name: 'Transcode Lecture.mp4',
      kind: 'transcode',
      createdAt: '2024-05-01T11:00:00.250Z',
    });
    db.prepare(
      'INSERT INTO jobs (id, owner, parent, status, seq, updated_at, finished_at, state) VALUES (?, ?, NULL, ?, 3, ?, NULL, ?)',
    ).run(job.id, job.owner, job.status, Date.parse(job.updatedAt), JSON.stringify(job));
    db.close();

    const store = await open(file);
    expect((await store.listJobs({ limit: 10, search: 'lecture' })).jobs.map((j) => j.id)).toEqual([
      'legacy-1',
    ]);
    expect((await store.listJobs({ limit: 10, kind: 'transcode' })).jobs).toHaveLength(1);
    const created = Date.parse(job.createdAt);
    expect((await store.listJobs({ limit: 10, createdAfter: created })).jobs).toHaveLength(1);
    expect((await store.listJobs({ limit: 10, createdAfter: created + 1 })).jobs).toHaveLength(0);
  });

  it('refuses a database written by a newer schema', async () => {
    const file = dbFile();
    const store = await open(file);
    await store.close();
    const db = new Database(file);
    db.prepare('INSERT INTO schema_migrations (version, name, applied_at) VALUES (?, ?, ?)').run(
      LATEST_VERSION + 1,
      'future',
      Date.now(),
    );
    db.close();
    const newer = new SqliteStore({ path: file });
    stores.push(newer);
    await expect(newer.migrate()).rejects.toThrow(/newer/);
  });

  it('shares committed data and conflicts between two instances on one file', async () => {
    const file = dbFile();
    const a = await open(file);
    const b = await open(file);
    await a.commit([write('s1', 0, 1)]);
    expect(await b.getJob('s1')).toEqual(state('s1', 1));

    // Both build on seq 1; the second writer must be refused, not fork the log.
    await b.commit([write('s1', 1, 2)]);
    await expect(a.commit([write('s1', 1, 2)])).rejects.toBeInstanceOf(StoreConflictError);
    expect((await a.getJob('s1'))?.seq).toBe(2);
    expect((await a.getEvents('s1', 0, 10)).map((e) => e.seq)).toEqual([1, 2]);
  });

  it('works in memory', async () => {
    const store = await open(':memory:');
    await store.commit([write('mem', 0, 1)]);
    expect((await store.getJob('mem'))?.seq).toBe(1);
    expect(await store.ping()).toBe(true);
  });

  it('reports an unopenable file as unavailable', () => {
    const missing = path.join(dbFile(), 'no-such-dir', 'headway.db');
    expect(() => new SqliteStore({ path: missing })).toThrow(StoreUnavailableError);
  });

  it('reports a closed store as unavailable', async () => {
    const store = await open(dbFile());
    await store.close();
    await expect(store.getJob('x')).rejects.toBeInstanceOf(StoreUnavailableError);
    await expect(store.commit([write('x', 0, 1)])).rejects.toBeInstanceOf(StoreUnavailableError);
    expect(await store.ping()).toBe(false);
  });

  it('rejects a malformed cursor', async () => {
    const store = await open(dbFile());
    await expect(store.listJobs({ limit: 10, cursor: 'not-a-cursor' })).rejects.toMatchObject({
      code: 'HW_ERR_INVALID_VALUE',
    });
  });
});
