/**
 * The real PostgreSQL and Redis the scale-out tests run against, and the cleanup
 * they need: a schema per test, a key prefix per test, and ways to cut the
 * connections of one test's processes without touching anyone else's (the
 * servers are shared with the other suites, so they are never stopped).
 */
import { randomBytes } from 'node:crypto';
import { Redis } from 'ioredis';
import pg from 'pg';
import { requireService, type ServiceGate } from './ci.js';

export const POSTGRES_URL =
  process.env.HEADWAY_TEST_POSTGRES_URL ?? 'postgres://postgres@127.0.0.1:5432/postgres';
export const REDIS_URL = process.env.HEADWAY_TEST_REDIS_URL ?? 'redis://127.0.0.1:6379';

/** Null when PostgreSQL answers, else why not. */
export async function probePostgres(): Promise<string | null> {
  const client = new pg.Client({ connectionString: POSTGRES_URL, connectionTimeoutMillis: 2000 });
  client.on('error', () => {});
  try {
    await client.connect();
    await client.query('SELECT 1');
    return null;
  } catch (err) {
    return err instanceof Error ? err.message || String((err as { code?: unknown }).code) : String(err);
  } finally {
    await client.end().catch(() => {});
  }
}

/** Null when Redis answers, else why not. */
export async function probeRedis(): Promise<string | null> {
  const redis = new Redis(REDIS_URL, { lazyConnect: true, connectTimeout: 2000, maxRetriesPerRequest: 0 });
  redis.on('error', () => {});
  try {
    await redis.connect();
    await redis.ping();
    return null;
  } catch (err) {
    return err instanceof Error ? err.message : String(err);
  } finally {
    redis.disconnect();
  }
}

/** Gate a suite on PostgreSQL (see `requireService`): skips outside CI when it does not answer. */
export async function requirePostgres(): Promise<ServiceGate> {
  const problem = await probePostgres();
  return requireService('PostgreSQL', problem && `no PostgreSQL at ${POSTGRES_URL}: ${problem}`);
}

/** Gate a suite on Redis (see `requireService`): skips outside CI when it does not answer. */
export async function requireRedis(): Promise<ServiceGate> {
  const problem = await probeRedis();
  return requireService('Redis', problem && `no Redis at ${REDIS_URL}: ${problem}`);
}

/** A name no other test (or test worker) uses: `<base>_<pid>_<random>`. */
export function uniqueName(base: string): string {
  return `${base}_${process.pid}_${randomBytes(4).toString('hex')}`;
}

/** PostgreSQL URL whose connections carry `application_name`, so that a test can find (and cut) them. */
export function postgresUrlFor(applicationName: string): string {
  const url = new URL(POSTGRES_URL);
  url.searchParams.set('application_name', applicationName);
  return url.toString();
}

export async function withPostgres<T>(fn: (client: pg.Client) => Promise<T>): Promise<T> {
  const client = new pg.Client({ connectionString: POSTGRES_URL });
  client.on('error', () => {});
  await client.connect();
  try {
    return await fn(client);
  } finally {
    await client.end().catch(() => {});
  }
}

export async function dropSchema(schema: string): Promise<void> {
  await withPostgres((c) => c.query(`DROP SCHEMA IF EXISTS ${pg.escapeIdentifier(schema)} CASCADE`));
}

/** Terminate the server processes of every connection named `applicationName`; resolves with how many. */
export async function terminatePostgres(applicationName: string): Promise<number> {
  return withPostgres(async (c) => {
    const { rows } = await c.query<{ ok: boolean }>(
      'SELECT pg_terminate_backend(pid) AS ok FROM pg_stat_activity WHERE application_name = $1',
      [applicationName],
    );
    return rows.filter((r) => r.ok).length;
  });
}

/** A plain command connection for a test's own use. */
export function redisClient(): Redis {
  const redis = new Redis(REDIS_URL, { maxRetriesPerRequest: 1 });
  redis.on('error', () => {});
  return redis;
}

/** Delete every key under the prefix. */
export async function deleteKeys(redis: Redis, prefix: string): Promise<void> {
  const pattern = `${prefix.replace(/[*?[\]\\]/g, '\\$&')}*`;
  let cursor = '0';
  do {
    const [next, keys] = await redis.scan(cursor, 'MATCH', pattern, 'COUNT', 500);
    cursor = next;
    if (keys.length > 0) await redis.del(...keys);
  } while (cursor !== '0');
}

/**
 * Kill the Redis connections whose name starts with `namePrefix`, of one type
 * (`pubsub`: subscribers; `normal`: command connections) or all. Resolves with
 * how many were killed. `CLIENT KILL` filters are ANDed, so each goes by its id.
 */
export async function killRedisClients(
  redis: Redis,
  namePrefix: string,
  type?: 'pubsub' | 'normal',
): Promise<number> {
  const list = (await redis.client('LIST')) as string;
  let killed = 0;
  for (const line of list.split('\n')) {
    const fields = Object.fromEntries(
      line
        .trim()
        .split(' ')
        .map((kv) => {
          const i = kv.indexOf('=');
          return [kv.slice(0, i), kv.slice(i + 1)];
        }),
    );
    if (!fields.name?.startsWith(namePrefix)) continue;
    // A subscribed connection shows `sub=` or `psub=` above 0; flags `P` in Redis 7.
    const isPubsub =
      Number(fields.sub ?? 0) > 0 || Number(fields.psub ?? 0) > 0 || fields.flags?.includes('P');
    if (type === 'pubsub' && !isPubsub) continue;
    if (type === 'normal' && isPubsub) continue;
    killed += Number(await redis.client('KILL', 'ID', fields.id));
  }
  return killed;
}
