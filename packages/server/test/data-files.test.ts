/**
 * What the SQLite store leaves on disk: deleted and swept data cannot be read
 * back from the database files, and the files are private to their owner.
 */
import { mkdtempSync, readdirSync, readFileSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { jobWrite, startHub, type TestHub } from '@headway/test-helpers';
import Database from 'better-sqlite3';
import { afterEach, describe, expect, it } from 'vitest';
import { SqliteStore } from '../src/store/sqlite.js';

let hub: TestHub;
afterEach(async () => {
  await hub?.close();
});

/** How many times `marker` occurs in the database files (`headway.db`, `-wal`, `-shm`). */
function occurrences(dir: string, marker: string): number {
  let n = 0;
  for (const name of readdirSync(dir).filter((f) => f.startsWith('headway.db'))) {
    const bytes = readFileSync(join(dir, name));
    for (let i = bytes.indexOf(marker); i >= 0; i = bytes.indexOf(marker, i + 1)) n++;
  }
  return n;
}

async function jobWithMarker(id: string, marker: string, parent?: string): Promise<void> {
  const created = await hub.post('/v1/jobs', {
    id,
    owner: 'u1',
    name: `${marker} name`,
    metadata: { note: `${marker} metadata` },
    ...(parent ? { parent } : {}),
  });
  expect(created.status).toBe(201);
  for (let n = 1; n <= 20; n++) {
    const res = await hub.post(`/v1/jobs/${id}/events`, {
      events: [
        { kind: 'log', message: `${marker} log ${n}` },
        { kind: 'progress', percent: n, message: marker },
      ],
    });
    expect(res.status).toBe(200);
  }
}

describe('SQLite data files', () => {
  it('are created readable by their owner only', async () => {
    hub = await startHub();
    await jobWithMarker('mode', 'MODE-MARKER');
    for (const name of readdirSync(hub.dataDir).filter((f) => f.startsWith('headway.'))) {
      expect([name, statSync(join(hub.dataDir, name)).mode & 0o777]).toEqual([name, 0o600]);
    }
  });

  it('keep nothing of a deleted parent and its children', async () => {
    hub = await startHub();
    const marker = 'DELETED-MARKER-7f3a';
    await jobWithMarker('batch', marker);
    await jobWithMarker('batch-a', marker, 'batch');
    await jobWithMarker('batch-b', marker, 'batch');
    await jobWithMarker('kept', 'KEPT-MARKER');
    expect(occurrences(hub.dataDir, marker)).toBeGreaterThan(0);
    expect((await hub.request('DELETE', '/v1/jobs/batch')).status).toBe(204);
    expect(occurrences(hub.dataDir, marker)).toBe(0);
    // The other job is intact.
    expect((await hub.get('/v1/jobs/kept')).body.seq).toBe(41);
  });

  it('keep nothing of a deleted job that another connection was reading: the delete waits for it', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'headway-scrub-'));
    const store = new SqliteStore({ path: join(dir, 'headway.db') });
    const reader = new Database(join(dir, 'headway.db'));
    try {
      await store.migrate();
      const marker = 'READ-MARKER-5e1b';
      await store.commit([jobWrite('gone', 0, 1, marker)]);
      for (let seq = 1; seq < 20; seq++)
        await store.commit([jobWrite('gone', seq, seq + 1, `${marker} ${seq}`)]);
      // An open read transaction keeps the WAL, and the deleted rows' pages in it.
      reader.exec('BEGIN');
      reader.prepare('SELECT count(*) FROM jobs').get();
      let deleted = false;
      const deleting = store.deleteJobs(['gone']).then(() => (deleted = true));
      await new Promise((resolve) => setImmediate(resolve));
      expect(deleted).toBe(false);
      reader.exec('COMMIT');
      await deleting;
      expect(occurrences(dir, marker)).toBe(0);
    } finally {
      reader.close();
      await store.close();
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('keep nothing of swept jobs', async () => {
    hub = await startHub();
    const marker = 'SWEPT-MARKER-c01d';
    await jobWithMarker('old', marker);
    expect((await hub.post('/v1/jobs/old/events', { events: [{ kind: 'completed' }] })).status).toBe(200);
    const future = Date.now() + 60_000;
    const swept = await hub.server.hub.store.sweep({
      eventsBefore: future,
      jobsBefore: future,
      batchSize: 7,
    });
    expect(swept.jobs).toBe(1);
    expect(occurrences(hub.dataDir, marker)).toBe(0);
  });
});
