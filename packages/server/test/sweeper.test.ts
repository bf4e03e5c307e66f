import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import pino from 'pino';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { Hub } from '../src/hub.js';
import { defaultRetention } from '../src/options.js';
import { SqliteStore } from '../src/store/sqlite.js';
import { Sweeper } from '../src/sweeper.js';

const DAY = 24 * 60 * 60 * 1000;
let dir: string;
let store: SqliteStore;

beforeEach(async () => {
  dir = mkdtempSync(join(tmpdir(), 'headway-sweep-'));
  store = new SqliteStore({ path: join(dir, 'headway.db') });
  await store.migrate();
});

afterEach(async () => {
  await store.close();
  rmSync(dir, { recursive: true, force: true });
});

describe('Sweeper', () => {
  it('deletes finished jobs and events past retention, keeping running jobs and recent data', async () => {
    let clock = Date.parse('2026-01-01T00:00:00Z');
    const hub = new Hub({ store, now: () => clock });
    await hub.createJob({ id: 'old-done', owner: 'u' });
    await hub.publish('old-done', [{ kind: 'completed' }]);
    await hub.createJob({ id: 'old-running', owner: 'u' });
    await hub.publish('old-running', [{ kind: 'progress', percent: 10 }]);
    clock += 40 * DAY;
    await hub.publish('old-running', [{ kind: 'progress', percent: 20 }]);
    await hub.createJob({ id: 'new-done', owner: 'u' });
    await hub.publish('new-done', [{ kind: 'completed' }]);

    const sweeper = new Sweeper(
      store,
      { ...defaultRetention, batchSize: 1 },
      pino({ level: 'silent' }),
      () => clock,
    );
    const result = await sweeper.sweep();
    expect(result.jobs).toBe(1);
    expect(await store.getJob('old-done')).toBeNull();
    expect(await store.getJob('new-done')).not.toBeNull();
    // The running job stays; only its events older than retention go.
    expect(await store.getJob('old-running')).not.toBeNull();
    expect((await store.getEvents('old-running', 0, 10)).map((e) => e.seq)).toEqual([3]);
    // A resume that reaches into swept events gets the state instead.
    expect(await hub.resume('old-running', 1)).toMatchObject({ recovered: false, events: [] });
    await hub.close();
  });

  it('runs on its interval and stops cleanly', async () => {
    const sweeper = new Sweeper(
      store,
      { ...defaultRetention, sweepIntervalMs: 5 },
      pino({ level: 'silent' }),
    );
    sweeper.start();
    await new Promise((r) => setTimeout(r, 30));
    sweeper.stop();
    expect(await sweeper.sweep()).toEqual({ events: 0, jobs: 0 });
  });
});
