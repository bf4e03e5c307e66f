/**
 * Which dialects a hub serves and where: `options.dialects.enabled` and
 * `prefix`; the session endpoints stay; a shutdown tells dialect clients to
 * reconnect (1001).
 */
import { existsSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { connect, startHub, TEST_API_KEY, TEST_JWT_SECRET, type TestHub } from '@headway/test-helpers';
import { afterEach, describe, expect, it } from 'vitest';
import { createServer } from '../../src/server.js';
import { createJob, uniqueId, wsBase } from './helpers.js';

/** The HTTP status an upgrade of `path` is refused with, or 101 when it is accepted. */
async function upgradeStatus(hub: TestHub, path: string): Promise<number> {
  try {
    const client = await connect(`${wsBase(hub)}${path}`);
    await client.close();
    return 101;
  } catch (err) {
    return (err as { status?: number }).status ?? 0;
  }
}

describe('dialect registry', () => {
  let hub: TestHub;
  afterEach(async () => {
    await hub?.close();
  });

  it('serves every dialect at the seeds’ own paths by default', async () => {
    hub = await startHub();
    const job = uniqueId('reg');
    await createJob(hub, { id: job, owner: 'alice', public: true });
    for (const path of [
      '/ws/alice',
      `/ws/progress/${job}`,
      `/api/v1/jobs/${job}/stream`,
      `/ws/download/${job}`,
      '/api/ws/progress',
    ]) {
      expect(await upgradeStatus(hub, path), path).toBe(101);
    }
    expect((await hub.get(`/api/v1/jobs/${job}`, null)).status).toBe(200);
    expect((await hub.get(`/api/status/${job}`, null)).status).toBe(200);
    // Unknown paths are still refused.
    expect(await upgradeStatus(hub, '/ws/alice/extra')).toBe(404);
  });

  it('serves only the enabled dialects, under the prefix', async () => {
    hub = await startHub({ dialects: { enabled: ['job-stream'], prefix: '/compat' } });
    const job = uniqueId('reg');
    await createJob(hub, { id: job, owner: 'alice', public: true });
    expect(await upgradeStatus(hub, `/compat/api/v1/jobs/${job}/stream`)).toBe(101);
    expect(await upgradeStatus(hub, `/api/v1/jobs/${job}/stream`)).toBe(404);
    expect(await upgradeStatus(hub, `/compat/ws/download/${job}`)).toBe(404);
    expect(await upgradeStatus(hub, '/compat/ws/alice')).toBe(404);
    expect((await hub.get(`/compat/api/v1/jobs/${job}`, null)).status).toBe(200);
    expect((await hub.get(`/api/v1/jobs/${job}`, null)).status).toBe(404);
    expect((await hub.get(`/compat/api/status/${job}`, null)).status).toBe(404);
    // The native protocol is untouched by the prefix.
    expect(await upgradeStatus(hub, '/v1/ws')).toBe(101);
  });

  it('serves none with an empty list, and keeps the session endpoints', async () => {
    hub = await startHub({ dialects: { enabled: [] } });
    const job = uniqueId('reg');
    await createJob(hub, { id: job, owner: 'alice', public: true });
    expect(await upgradeStatus(hub, `/ws/download/${job}`)).toBe(404);
    expect(await upgradeStatus(hub, '/ws/alice')).toBe(404);
    expect((await hub.get(`/api/status/${job}`, null)).status).toBe(404);
    const session = await hub.request('POST', '/v1/session', undefined, await hub.token('alice'));
    expect(session.status).toBe(200);
  });

  it('refuses options that would serve nothing, before anything is created', async () => {
    const dataDir = join(tmpdir(), uniqueId('headway-never-created'));
    for (const dialects of [
      { prefix: 'compat' },
      { prefix: '/compat/' },
      { enabled: ['seed9' as never] },
      { streamConnectionsPerMinute: -1 },
      { dashboardConnectionsPerUser: 0 },
    ]) {
      const created = createServer({
        dataDir,
        jwtSecret: TEST_JWT_SECRET,
        apiKeys: [TEST_API_KEY],
        dialects,
      });
      await expect(created, JSON.stringify(dialects)).rejects.toThrow(TypeError);
    }
    expect(existsSync(dataDir)).toBe(false);
  });

  it('tells dialect clients to reconnect when the hub shuts down', async () => {
    hub = await startHub();
    const job = uniqueId('reg');
    await createJob(hub, { id: job, owner: 'alice', public: true });
    const client = await connect(`${wsBase(hub)}/ws/download/${job}`);
    await hub.close();
    expect((await client.closed).code).toBe(1001);
  });
});
