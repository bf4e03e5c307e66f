/**
 * Requests at the edges: paths that try to leave the dashboard's directory,
 * source maps outside development, stage weights too large to add up, and the
 * cost of a progress history.
 */
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import http from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ErrorCode, MAX_STAGE_WEIGHT } from '@headway/protocol';
import { startHub, type TestHub } from '@headway/test-helpers';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

let dashboardDir: string;
let hub: TestHub;
let production: TestHub;

beforeAll(async () => {
  dashboardDir = mkdtempSync(join(tmpdir(), 'headway-dashboard-'));
  mkdirSync(join(dashboardDir, 'assets'));
  writeFileSync(join(dashboardDir, 'index.html'), '<!doctype html><title>x</title>');
  writeFileSync(join(dashboardDir, 'assets', 'app.js'), 'console.log(1)\n//# sourceMappingURL=app.js.map');
  writeFileSync(join(dashboardDir, 'assets', 'app.js.map'), '{"version":3}');
  hub = await startHub({ dashboardDir, dialects: { historyRequestsPerMinute: 3 } });
  production = await startHub({ dashboardDir, production: true });
});
afterAll(async () => {
  await hub?.close();
  await production?.close();
  rmSync(dashboardDir, { recursive: true, force: true });
});

/** GET with the path exactly as given (fetch would normalize the dots away). */
function rawGet(base: string, path: string): Promise<number> {
  const { hostname, port } = new URL(base);
  return new Promise((resolve, reject) => {
    const req = http.get({ hostname, port, path, headers: { accept: 'text/html,*/*' } }, (res) => {
      res.resume();
      resolve(res.statusCode ?? 0);
    });
    req.on('error', reject);
  });
}

describe('the dashboard’s files', () => {
  it.each([
    '/../package.json',
    '/assets/../../package.json',
    '/%2e%2e/package.json',
    '/assets/..%2f..%2fpackage.json',
    '/assets/%00.js',
    '/assets/..\\..\\package.json',
  ])('%s answers 404, not 500', async (path) => {
    expect(await rawGet(hub.url, path)).toBe(404);
  });

  it('serves source maps in development only', async () => {
    expect(await rawGet(hub.url, '/assets/app.js')).toBe(200);
    expect(await rawGet(hub.url, '/assets/app.js.map')).toBe(200);
    expect(await rawGet(production.url, '/assets/app.js')).toBe(200);
    expect(await rawGet(production.url, '/assets/app.js.map')).toBe(404);
  });
});

describe('stage weights', () => {
  it.each([1e308, MAX_STAGE_WEIGHT * 2])('a weight of %d is refused', async (weight) => {
    const res = await hub.post('/v1/jobs', {
      owner: 'u1',
      stages: [
        { name: 'a', weight },
        { name: 'b', weight },
      ],
    });
    expect(res.status).toBe(400);
    expect(res.body.error.code).toBe(ErrorCode.INVALID_VALUE);
  });

  it(`a weight of ${MAX_STAGE_WEIGHT} is taken`, async () => {
    const res = await hub.post('/v1/jobs', {
      owner: 'u1',
      stages: [{ name: 'a', weight: MAX_STAGE_WEIGHT }],
    });
    expect(res.status).toBe(201);
  });
});

describe('progress-history (user-dashboard)', () => {
  it('pages with limit and before, and is rate-limited per user', async () => {
    const id = 'history-job';
    expect((await hub.post('/v1/jobs', { id, owner: 'viewer', name: 'h' })).status).toBe(201);
    for (let n = 1; n <= 5; n++) {
      expect(
        (await hub.post(`/v1/jobs/${id}/events`, { events: [{ kind: 'progress', percent: n * 10 }] })).status,
      ).toBe(200);
    }
    const token = await hub.token('viewer');
    const path = `/api/jobs/${id}/progress-history`;
    const all = await hub.get(path, token);
    expect(all.status).toBe(200);
    const latest = await hub.get(`${path}?limit=2`, token);
    expect(latest.body).toEqual(all.body.slice(-2));
    const before = latest.body[0].created_at as string;
    const older = await hub.get(`${path}?limit=2&before=${encodeURIComponent(before)}`, token);
    expect(older.status).toBe(200);
    for (const entry of older.body) expect(Date.parse(entry.created_at)).toBeLessThan(Date.parse(before));
    // The fourth request of the minute is over the budget of 3.
    const bad = await hub.get(`${path}?limit=0`, token);
    expect(bad.status).toBe(429);
    expect(bad.body.error.code).toBe(ErrorCode.RATE_LIMITED);
    // Another user has a budget of its own; a limit out of range is refused.
    const other = await hub.get(`${path}?limit=0`, await hub.token('someone-else'));
    expect(other.status).toBe(400);
    expect(other.body.error.code).toBe(ErrorCode.INVALID_VALUE);
  });
});
