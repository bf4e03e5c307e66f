/**
 * @headway/test-helpers: what Headway's suites share. Browser helpers are in
 * `@headway/test-helpers/browser`, so that suites without a browser do not load one.
 */

export { REPO_ROOT, requireFreshBuild } from './build.js';
export { IN_CI, isCi, requireService, type ServiceGate } from './ci.js';
export { FIXTURE_TIME, jobWrite, runningJob } from './fixtures.js';
export {
  type HttpResponse,
  startHub,
  TEST_API_KEY,
  TEST_JWT_SECRET,
  type TestHub,
  type TokenOptions,
} from './hub.js';
export { type HubProcess, spawnHubProcess } from './hub-process.js';
export { receivedBefore } from './sentinel.js';
export {
  deleteKeys,
  dropSchema,
  killRedisClients,
  POSTGRES_URL,
  postgresUrlFor,
  probePostgres,
  probeRedis,
  REDIS_URL,
  redisClient,
  requirePostgres,
  requireRedis,
  terminatePostgres,
  uniqueName,
  withPostgres,
} from './services.js';
export { type Ready, WAIT_FOR_TIMEOUT_MS, waitFor } from './wait-for.js';
export { type ConnectOptions, connect, type TestClient } from './ws-client.js';
