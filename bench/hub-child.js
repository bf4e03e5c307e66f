/**
 * The Headway hub as the benchmarks run it: the real server (`createServer` from
 * the built package, SQLite store in a temporary data directory, default limits),
 * in a process of its own so that its CPU and memory are measured apart from the
 * load generator. Configured like the CLI, from the environment:
 * HEADWAY_JWT_SECRET, HEADWAY_API_KEYS (comma-separated), HEADWAY_DATA_DIR,
 * HEADWAY_DURABILITY (normal or full), HEADWAY_MAX_CONNECTIONS (default 10,000;
 * the connect load opens more).
 */
import { serveParent } from './lib/parent-channel.js';

// `HEADWAY_BENCH_SERVER`: the built server module of another tree (`--before`), to compare in one run.
const { createServer } = await import(
  process.env.HEADWAY_BENCH_SERVER ?? new URL('../packages/server/dist/server.js', import.meta.url).href
);

const server = await createServer({
  port: 0,
  host: '127.0.0.1',
  dataDir: process.env.HEADWAY_DATA_DIR,
  jwtSecret: process.env.HEADWAY_JWT_SECRET,
  apiKeys: process.env.HEADWAY_API_KEYS.split(','),
  logLevel: 'warn',
  ...(process.env.HEADWAY_DURABILITY ? { durability: process.env.HEADWAY_DURABILITY } : {}),
  ...(process.env.HEADWAY_MAX_CONNECTIONS
    ? { limits: { maxConnections: Number(process.env.HEADWAY_MAX_CONNECTIONS) } }
    : {}),
});
const url = await server.listen();
serveParent({ url, stop: () => server.close() });
