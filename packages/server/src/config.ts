/**
 * The `headway start` configuration: command-line flags and `HEADWAY_*`
 * environment variables, parsed and validated into `createServer()` options.
 *
 * Flags win over the environment. Every mistake stops start-up with a
 * `ConfigError` that names the flag or variable at fault, because a hub that
 * silently ignores a typo (`--prot 80`, `HEADWAY_PROT=80`) listens somewhere
 * its operator does not expect.
 *
 * Secrets come from the environment only: a flag would show them to every user
 * of the machine in `ps`.
 */
import { parseArgs } from 'node:util';
import { ConfigError } from './config-error.js';
import {
  MIN_JWT_SECRET_BYTES,
  nonEmpty,
  parseApiKeys,
  parseBoolean,
  parseDialects,
  parseLogFormat,
  parseLogLevel,
  parseOrigins,
  parsePort,
  parsePositiveInteger,
  parsePrefix,
  parseServerUrl,
} from './config-values.js';
import { checkDataDir } from './data-dir.js';
import { unknownOption } from './nearest-flag.js';
import {
  DURABILITIES,
  type Durability,
  defaultLimits,
  defaultRetention,
  defaultWebhooks,
  type HeadwayOptionsInput,
} from './options.js';
import { stallDefaults } from './state/stall.js';

export { ConfigError, type ConfigErrorReason } from './config-error.js';
export { LOG_LEVELS, type LogLevel, MIN_API_KEY_LENGTH, MIN_JWT_SECRET_BYTES } from './config-values.js';

/** Each flag of `headway start` and the variable that sets it when the flag is absent. */
const SETTINGS = {
  port: { flag: '--port', env: 'HEADWAY_PORT', type: 'string' },
  host: { flag: '--host', env: 'HEADWAY_HOST', type: 'string' },
  'data-dir': { flag: '--data-dir', env: 'HEADWAY_DATA_DIR', type: 'string' },
  durability: { flag: '--durability', env: 'HEADWAY_DURABILITY', type: 'string' },
  'allowed-origins': { flag: '--allowed-origins', env: 'HEADWAY_ALLOWED_ORIGINS', type: 'string' },
  'log-level': { flag: '--log-level', env: 'HEADWAY_LOG_LEVEL', type: 'string' },
  'log-format': { flag: '--log-format', env: 'HEADWAY_LOG_FORMAT', type: 'string' },
  dialects: { flag: '--dialects', env: 'HEADWAY_DIALECTS', type: 'string' },
  'dialect-prefix': { flag: '--dialect-prefix', env: 'HEADWAY_DIALECT_PREFIX', type: 'string' },
  demo: { flag: '--demo', env: 'HEADWAY_DEMO', type: 'boolean' },
  production: { flag: '--production', env: 'HEADWAY_PRODUCTION', type: 'boolean' },
  postgres: { flag: '--postgres', env: 'HEADWAY_POSTGRES_URL', type: 'string' },
  'postgres-schema': { flag: '--postgres-schema', env: 'HEADWAY_POSTGRES_SCHEMA', type: 'string' },
  redis: { flag: '--redis', env: 'HEADWAY_REDIS_URL', type: 'string' },
  'redis-prefix': { flag: '--redis-prefix', env: 'HEADWAY_REDIS_PREFIX', type: 'string' },
  'idle-check-ms': { flag: '--idle-check-ms', env: 'HEADWAY_IDLE_CHECK_MS', type: 'string' },
  'webhook-allow-private': {
    flag: '--webhook-allow-private',
    env: 'HEADWAY_WEBHOOK_ALLOW_PRIVATE',
    type: 'boolean',
  },
  'webhook-allow-http': { flag: '--webhook-allow-http', env: 'HEADWAY_WEBHOOK_ALLOW_HTTP', type: 'boolean' },
} as const;

/**
 * The numeric limits and retention settings, one flag and one variable each,
 * derived from the documented defaults: `limits.maxMessageBytes` is
 * `--max-message-bytes` / `HEADWAY_MAX_MESSAGE_BYTES`, `retention.eventsDays` is
 * `--retention-events-days` / `HEADWAY_RETENTION_EVENTS_DAYS`.
 */
const NUMERIC_SETTINGS = [
  ...Object.keys(defaultLimits).map((key) => numericSetting('limits', key, '')),
  ...Object.keys(defaultRetention).map((key) => numericSetting('retention', key, 'retention-')),
  ...Object.entries(defaultWebhooks)
    .filter(([, value]) => typeof value === 'number')
    .map(([key]) => numericSetting('webhooks', key, 'webhook-')),
  numericSetting('top', 'shutdownTimeoutMs', ''),
  numericSetting('dialects', 'streamConnectionsPerMinute', 'dialect-'),
  numericSetting('dialects', 'dashboardConnectionsPerUser', 'dialect-'),
  numericSetting('dialects', 'historyRequestsPerMinute', 'dialect-'),
  ...Object.keys(stallDefaults).map((key) => numericSetting('stall', key, 'stall-')),
];

function numericSetting(
  group: 'limits' | 'retention' | 'dialects' | 'webhooks' | 'stall' | 'top',
  key: string,
  prefix: string,
) {
  const kebab = prefix + key.replace(/[A-Z]/g, (c) => `-${c.toLowerCase()}`);
  return {
    group,
    key,
    name: kebab,
    flag: `--${kebab}`,
    env: `HEADWAY_${kebab.replace(/-/g, '_').toUpperCase()}`,
  };
}

/** Variables read from the environment only. */
const SECRET_VARIABLES = ['HEADWAY_JWT_SECRET', 'HEADWAY_API_KEYS'] as const;

/**
 * Variables read by Headway's clients and workers, which often share an
 * environment (a `.env` file, a container) with the hub: not ours to refuse.
 */
const CLIENT_VARIABLES: ReadonlySet<string> = new Set(['HEADWAY_URL', 'HEADWAY_API_KEY', 'HEADWAY_TOKEN']);

/** PostgreSQL truncates longer identifiers, so two long schema names could name one schema. */
const MAX_SCHEMA_BYTES = 63;

/** Every flag of `headway start`, for the suggestion after a typo. */
const KNOWN_FLAGS: readonly string[] = [
  ...Object.values(SETTINGS).map((s) => s.flag),
  ...NUMERIC_SETTINGS.map((s) => s.flag),
  '--help',
];

const KNOWN_VARIABLES: ReadonlySet<string> = new Set([
  ...Object.values(SETTINGS).map((s) => s.env),
  ...NUMERIC_SETTINGS.map((s) => s.env),
  ...SECRET_VARIABLES,
]);

/**
 * Parse and validate the flags of `headway start` (without the command name)
 * and the environment. Reads nothing but its arguments (and, to refuse a data
 * directory on a kernel file system, the real path of the one given).
 *
 * @throws ConfigError naming the flag or variable at fault.
 */
export function loadConfig(argv: string[], env: NodeJS.ProcessEnv): HeadwayOptionsInput {
  const flags = parseFlags(argv);
  checkEnvironment(env);

  /** The flag's value if given, else the variable's; an empty variable counts as unset. */
  const pick = <K extends keyof typeof SETTINGS>(name: K) => {
    const flag = flags[name];
    if (flag !== undefined) return { value: flag, setting: SETTINGS[name].flag };
    const value = env[SETTINGS[name].env];
    if (value !== undefined && value !== '') return { value, setting: SETTINGS[name].env };
    return undefined;
  };

  const config: HeadwayOptionsInput = {};
  const port = pick('port');
  if (port) config.port = parsePort(String(port.value), port.setting);
  const host = pick('host');
  if (host) config.host = nonEmpty(String(host.value), host.setting, 'a host name or IP address');
  const dataDir = pick('data-dir');
  if (dataDir) {
    config.dataDir = nonEmpty(String(dataDir.value), dataDir.setting, 'a directory');
    checkDataDir(config.dataDir, dataDir.setting);
  }
  const durability = pick('durability');
  if (durability) config.durability = parseDurability(String(durability.value), durability.setting);
  const origins = pick('allowed-origins');
  if (origins) config.allowedOrigins = parseOrigins(String(origins.value), origins.setting);
  const logLevel = pick('log-level');
  if (logLevel) config.logLevel = parseLogLevel(String(logLevel.value), logLevel.setting);
  const logFormat = pick('log-format');
  if (logFormat) config.logFormat = parseLogFormat(String(logFormat.value), logFormat.setting);
  const dialects = pick('dialects');
  if (dialects) config.dialects = { enabled: parseDialects(String(dialects.value), dialects.setting) };
  const prefix = pick('dialect-prefix');
  if (prefix) {
    config.dialects = { ...config.dialects, prefix: parsePrefix(String(prefix.value), prefix.setting) };
  }
  const demo = pick('demo');
  if (demo) config.demo = parseBoolean(demo.value, demo.setting);
  const production = pick('production');
  if (production) config.production = parseBoolean(production.value, production.setting);
  Object.assign(config, parseCluster(pick));
  if (durability && config.postgresUrl) {
    throw new ConfigError(
      durability.setting,
      `${durability.setting} applies to the SQLite store only; PostgreSQL syncs every commit (see its synchronous_commit)`,
      'unsupported',
    );
  }
  const allowPrivate = pick('webhook-allow-private');
  if (allowPrivate) {
    config.webhooks = { allowPrivate: parseBoolean(allowPrivate.value, allowPrivate.setting) };
  }
  const allowHttp = pick('webhook-allow-http');
  if (allowHttp) {
    config.webhooks = { ...config.webhooks, allowHttp: parseBoolean(allowHttp.value, allowHttp.setting) };
  }

  for (const setting of NUMERIC_SETTINGS) {
    const flag = flags[setting.name as keyof Flags];
    const raw = flag !== undefined ? String(flag) : env[setting.env];
    if (raw === undefined || raw === '') continue;
    const value = parsePositiveInteger(raw, flag !== undefined ? setting.flag : setting.env);
    if (setting.group === 'top') config.shutdownTimeoutMs = value;
    else {
      const group = (config[setting.group] ??= {}) as Record<string, number>;
      group[setting.key] = value;
    }
  }

  const jwtSecret = env.HEADWAY_JWT_SECRET;
  if (jwtSecret !== undefined && jwtSecret !== '') {
    if (Buffer.byteLength(jwtSecret) < MIN_JWT_SECRET_BYTES) {
      throw new ConfigError(
        'HEADWAY_JWT_SECRET',
        `HEADWAY_JWT_SECRET must be at least ${MIN_JWT_SECRET_BYTES} bytes long (got ${Buffer.byteLength(jwtSecret)})`,
      );
    }
    config.jwtSecret = jwtSecret;
  }
  const apiKeys = env.HEADWAY_API_KEYS;
  if (apiKeys !== undefined && apiKeys !== '') config.apiKeys = parseApiKeys(apiKeys, 'HEADWAY_API_KEYS');
  return config;
}

function parseDurability(raw: string, setting: string): Durability {
  const value = raw.trim().toLowerCase();
  if (!(DURABILITIES as readonly string[]).includes(value)) {
    throw new ConfigError(setting, `${setting} must be one of ${DURABILITIES.join(', ')} (got "${raw}")`);
  }
  return value as Durability;
}

type Flags = {
  [K in keyof typeof SETTINGS]?: (typeof SETTINGS)[K]['type'] extends 'boolean' ? boolean : string;
};

function parseFlags(argv: string[]): Flags {
  let values: Record<string, string | boolean | undefined>;
  try {
    ({ values } = parseArgs({
      args: argv,
      options: {
        ...SETTINGS,
        ...Object.fromEntries(NUMERIC_SETTINGS.map((n) => [n.name, { type: 'string' as const }])),
      },
      strict: true,
      allowPositionals: false,
    }));
  } catch (err) {
    throw flagError(err);
  }
  return values as Flags;
}

/** Turn a `parseArgs` error into a ConfigError naming the flag (Node puts the name in quotes). */
function flagError(err: unknown): Error {
  const code = (err as { code?: unknown }).code;
  const message = err instanceof Error ? err.message : String(err);
  const quoted = /'([^']+)'/.exec(message)?.[1] ?? '';
  const name = quoted.split(' ')[0] ?? quoted;
  switch (code) {
    case 'ERR_PARSE_ARGS_UNKNOWN_OPTION':
      return new ConfigError(name, unknownOption(name, KNOWN_FLAGS), 'unknown');
    case 'ERR_PARSE_ARGS_UNEXPECTED_POSITIONAL':
      return new ConfigError(name, `unexpected argument ${name}`, 'unknown');
    case 'ERR_PARSE_ARGS_INVALID_OPTION_VALUE':
      if (message.includes('does not take an argument')) {
        return new ConfigError(name, `${name} does not take a value`);
      }
      if (message.includes('ambiguous')) {
        return new ConfigError(
          name,
          `${name} needs a value (write ${name}=VALUE for a value starting with "-")`,
        );
      }
      return new ConfigError(name, `${name} needs a value`);
    default:
      return err instanceof Error ? err : new Error(message);
  }
}

function checkEnvironment(env: NodeJS.ProcessEnv): void {
  for (const name of Object.keys(env)) {
    if (!name.startsWith('HEADWAY_') || KNOWN_VARIABLES.has(name) || CLIENT_VARIABLES.has(name)) continue;
    throw new ConfigError(
      name,
      `unknown environment variable ${name} (known: ${[...KNOWN_VARIABLES].join(', ')})`,
      'unknown',
    );
  }
}

type Picked = { value: string | boolean; setting: string } | undefined;

/**
 * The settings of several processes: a shared PostgreSQL store and a Redis bus.
 * A bus without a shared store would join processes that each hold their own
 * truth, so `--redis` needs `--postgres`; a schema or prefix without its server
 * would be ignored, so it is refused instead.
 */
function parseCluster(
  pick: (name: 'postgres' | 'postgres-schema' | 'redis' | 'redis-prefix' | 'idle-check-ms') => Picked,
) {
  const out: Pick<
    HeadwayOptionsInput,
    'postgresUrl' | 'postgresSchema' | 'redisUrl' | 'redisPrefix' | 'idleCheckMs'
  > = {};
  const postgres = pick('postgres');
  if (postgres)
    out.postgresUrl = parseServerUrl(String(postgres.value), postgres.setting, ['postgres:', 'postgresql:']);
  const schema = pick('postgres-schema');
  if (schema) {
    if (!postgres)
      throw new ConfigError(
        schema.setting,
        `${schema.setting} needs --postgres (or HEADWAY_POSTGRES_URL)`,
        'missing',
      );
    const value = String(schema.value);
    if (value.trim() === '' || value.includes('\0') || Buffer.byteLength(value) > MAX_SCHEMA_BYTES) {
      throw new ConfigError(
        schema.setting,
        `${schema.setting} must be a schema name of 1 to ${MAX_SCHEMA_BYTES} bytes`,
      );
    }
    out.postgresSchema = value;
  }
  const redis = pick('redis');
  if (redis) {
    if (!postgres) {
      throw new ConfigError(
        redis.setting,
        `${redis.setting} needs --postgres (or HEADWAY_POSTGRES_URL): processes that share a bus must share a store`,
        'missing',
      );
    }
    out.redisUrl = parseServerUrl(String(redis.value), redis.setting, ['redis:', 'rediss:']);
  }
  const prefix = pick('redis-prefix');
  if (prefix) {
    if (!redis)
      throw new ConfigError(
        prefix.setting,
        `${prefix.setting} needs --redis (or HEADWAY_REDIS_URL)`,
        'missing',
      );
    out.redisPrefix = nonEmpty(String(prefix.value), prefix.setting, 'a key prefix');
  }
  const idle = pick('idle-check-ms');
  if (idle) {
    const raw = String(idle.value).trim();
    if (!/^\d{1,9}$/.test(raw)) {
      throw new ConfigError(
        idle.setting,
        `${idle.setting} must be a whole number of milliseconds, 0 to disable (got "${raw}")`,
      );
    }
    out.idleCheckMs = Number(raw);
  }
  return out;
}
