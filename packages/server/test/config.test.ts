import { chmodSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { Auth } from '../src/auth.js';
import { ConfigError, loadConfig } from '../src/config.js';
import { DIALECT_NAMES, type HeadwayOptionsInput, resolveOptions } from '../src/options.js';
import { resolveSecrets, SECRETS_FILE } from '../src/secrets.js';

const SECRET = 's'.repeat(32);
const KEY_A = 'key-a-0123456789abcdef';
const KEY_B = 'key-b-0123456789abcdef';

/** The ConfigError that `fn` throws. */
function configError(fn: () => unknown): ConfigError {
  try {
    fn();
  } catch (err) {
    expect(err).toBeInstanceOf(ConfigError);
    return err as ConfigError;
  }
  throw new Error('expected a ConfigError');
}

describe('loadConfig', () => {
  it('returns nothing to override when neither flags nor variables are given', () => {
    expect(loadConfig([], {})).toEqual({});
  });

  it('reads every flag', () => {
    expect(
      loadConfig(
        [
          '--port',
          '8080',
          '--host=0.0.0.0',
          '--data-dir',
          '/var/lib/headway',
          '--allowed-origins',
          'https://app.example.com, http://localhost:5173',
          '--log-level',
          'debug',
          '--demo',
          '--production',
        ],
        {},
      ),
    ).toEqual({
      port: 8080,
      host: '0.0.0.0',
      dataDir: '/var/lib/headway',
      allowedOrigins: ['https://app.example.com', 'http://localhost:5173'],
      logLevel: 'debug',
      demo: true,
      production: true,
    });
  });

  it('reads every variable', () => {
    expect(
      loadConfig([], {
        HEADWAY_PORT: '9090',
        HEADWAY_HOST: '::1',
        HEADWAY_DATA_DIR: '/data',
        HEADWAY_ALLOWED_ORIGINS: 'https://a.example.com/,*',
        HEADWAY_LOG_LEVEL: 'WARN',
        HEADWAY_DEMO: '1',
        HEADWAY_PRODUCTION: 'true',
        HEADWAY_JWT_SECRET: SECRET,
        HEADWAY_API_KEYS: ` ${KEY_A} , ${KEY_B}`,
      }),
    ).toEqual({
      port: 9090,
      host: '::1',
      dataDir: '/data',
      allowedOrigins: ['https://a.example.com', '*'],
      logLevel: 'warn',
      demo: true,
      production: true,
      jwtSecret: SECRET,
      apiKeys: [KEY_A, KEY_B],
    });
  });

  it('accepts port 0 (pick a free port) and reads false booleans', () => {
    expect(loadConfig(['--port', '0'], { HEADWAY_DEMO: 'no', HEADWAY_PRODUCTION: '0' })).toEqual({
      port: 0,
      demo: false,
      production: false,
    });
  });

  it('lets flags win over the environment', () => {
    const env = {
      HEADWAY_PORT: '1111',
      HEADWAY_HOST: 'env-host',
      HEADWAY_DATA_DIR: '/env',
      HEADWAY_ALLOWED_ORIGINS: 'https://env.example.com',
      HEADWAY_LOG_LEVEL: 'error',
      HEADWAY_DEMO: '0',
      HEADWAY_PRODUCTION: '0',
    };
    expect(
      loadConfig(
        [
          '--port=2222',
          '--host=flag-host',
          '--data-dir=/flag',
          '--allowed-origins=https://flag.example.com',
          '--log-level=trace',
          '--demo',
          '--production',
        ],
        env,
      ),
    ).toEqual({
      port: 2222,
      host: 'flag-host',
      dataDir: '/flag',
      allowedOrigins: ['https://flag.example.com'],
      logLevel: 'trace',
      demo: true,
      production: true,
    });
  });

  it('does not validate a variable that a flag overrides', () => {
    expect(loadConfig(['--port', '3000'], { HEADWAY_PORT: 'abc' })).toEqual({ port: 3000 });
  });

  it('treats an empty variable as unset', () => {
    expect(
      loadConfig([], { HEADWAY_PORT: '', HEADWAY_JWT_SECRET: '', HEADWAY_API_KEYS: '', HEADWAY_DEMO: '' }),
    ).toEqual({});
  });

  it('ignores the variables of Headway clients and workers, and everything not HEADWAY_*', () => {
    expect(
      loadConfig([], {
        HEADWAY_URL: 'http://127.0.0.1:7070',
        HEADWAY_API_KEY: KEY_A,
        HEADWAY_TOKEN: 'eyJ...',
        PATH: '/usr/bin',
        PORT: 'not-ours',
        headway_port: 'lower-case is not ours either',
      }),
    ).toEqual({});
  });

  it('stops on an unknown flag with "unknown option"', () => {
    const err = configError(() => loadConfig(['--prot', '80'], {}));
    expect(err.setting).toBe('--prot');
    expect(err.reason).toBe('unknown');
    expect(err.code).toBe('HW_ERR_CONFIG');
    expect(err.message).toBe('unknown option --prot (did you mean --port?)');
  });

  it.each([
    [['--prot=80'], '--prot', 'unknown'],
    [['-p', '80'], '-p', 'unknown'],
    [['extra'], 'extra', 'unknown'],
    [['--port'], '--port', 'invalid'],
    [['--port', '-1'], '--port', 'invalid'],
    [['--demo=1'], '--demo', 'invalid'],
    [['--production=yes'], '--production', 'invalid'],
  ] as const)('names the flag in %j', (argv, setting, reason) => {
    const err = configError(() => loadConfig([...argv], {}));
    expect(err.setting).toBe(setting);
    expect(err.reason).toBe(reason);
    expect(err.message).toContain(setting);
  });

  it('names an unknown HEADWAY_* variable', () => {
    const err = configError(() => loadConfig([], { HEADWAY_PROT: '80' }));
    expect(err.setting).toBe('HEADWAY_PROT');
    expect(err.reason).toBe('unknown');
    expect(err.message).toContain('HEADWAY_PROT');
  });

  it.each([
    ['port', ['--port', 'abc'], {}, '--port'],
    ['port', ['--port', '65536'], {}, '--port'],
    ['port', ['--port=-1'], {}, '--port'],
    ['port', ['--port', '1.5'], {}, '--port'],
    ['port', [], { HEADWAY_PORT: 'abc' }, 'HEADWAY_PORT'],
    ['port', [], { HEADWAY_PORT: '70000' }, 'HEADWAY_PORT'],
    ['port', [], { HEADWAY_PORT: '0x50' }, 'HEADWAY_PORT'],
    ['host', ['--host', ''], {}, '--host'],
    ['host', [], { HEADWAY_HOST: '   ' }, 'HEADWAY_HOST'],
    ['data dir', ['--data-dir='], {}, '--data-dir'],
    ['data dir', [], { HEADWAY_DATA_DIR: ' ' }, 'HEADWAY_DATA_DIR'],
    ['origin scheme', ['--allowed-origins', 'ftp://example.com'], {}, '--allowed-origins'],
    ['origin path', ['--allowed-origins', 'https://example.com/app'], {}, '--allowed-origins'],
    ['origin query', [], { HEADWAY_ALLOWED_ORIGINS: 'https://example.com?x=1' }, 'HEADWAY_ALLOWED_ORIGINS'],
    ['origin user', [], { HEADWAY_ALLOWED_ORIGINS: 'https://me@example.com' }, 'HEADWAY_ALLOWED_ORIGINS'],
    ['origin text', [], { HEADWAY_ALLOWED_ORIGINS: 'example.com' }, 'HEADWAY_ALLOWED_ORIGINS'],
    [
      'origin empty entry',
      [],
      { HEADWAY_ALLOWED_ORIGINS: 'https://a.com,,https://b.com' },
      'HEADWAY_ALLOWED_ORIGINS',
    ],
    ['log level', ['--log-level', 'verbose'], {}, '--log-level'],
    ['log level', [], { HEADWAY_LOG_LEVEL: 'loud' }, 'HEADWAY_LOG_LEVEL'],
    ['demo', [], { HEADWAY_DEMO: 'maybe' }, 'HEADWAY_DEMO'],
    ['production', [], { HEADWAY_PRODUCTION: '2' }, 'HEADWAY_PRODUCTION'],
    ['jwt secret', [], { HEADWAY_JWT_SECRET: 'too-short' }, 'HEADWAY_JWT_SECRET'],
    ['api key length', [], { HEADWAY_API_KEYS: `${KEY_A},short` }, 'HEADWAY_API_KEYS'],
    ['api key empty entry', [], { HEADWAY_API_KEYS: `${KEY_A},` }, 'HEADWAY_API_KEYS'],
  ] as const)('refuses an invalid %s and names %j %j as %s', (_what, argv, env, setting) => {
    const err = configError(() => loadConfig([...argv], { ...env }));
    expect(err.setting).toBe(setting);
    expect(err.reason).toBe('invalid');
    expect(err.message).toContain(setting);
  });

  it('never echoes a rejected secret', () => {
    const err = configError(() => loadConfig([], { HEADWAY_JWT_SECRET: 'hunter2-hunter2' }));
    expect(err.message).not.toContain('hunter2');
    const keyErr = configError(() => loadConfig([], { HEADWAY_API_KEYS: 'tiny-key' }));
    expect(keyErr.message).not.toContain('tiny-key');
  });

  it('reads the settings of several processes', () => {
    expect(
      loadConfig(
        [
          '--postgres',
          'postgres://hw:pw@db:5432/headway',
          '--postgres-schema',
          'tenant_a',
          '--redis',
          'redis://cache:6379/2',
          '--redis-prefix',
          'prod:',
          '--idle-check-ms',
          '0',
        ],
        {},
      ),
    ).toEqual({
      postgresUrl: 'postgres://hw:pw@db:5432/headway',
      postgresSchema: 'tenant_a',
      redisUrl: 'redis://cache:6379/2',
      redisPrefix: 'prod:',
      idleCheckMs: 0,
    });
    expect(
      loadConfig([], {
        HEADWAY_POSTGRES_URL: 'postgresql://db/headway',
        HEADWAY_REDIS_URL: 'rediss://cache',
        HEADWAY_IDLE_CHECK_MS: '2500',
      }),
    ).toEqual({ postgresUrl: 'postgresql://db/headway', redisUrl: 'rediss://cache', idleCheckMs: 2500 });
  });

  it('ignores empty variables of several processes', () => {
    expect(loadConfig([], { HEADWAY_POSTGRES_URL: '', HEADWAY_REDIS_URL: '' })).toEqual({});
  });

  it.each([
    ['a PostgreSQL URL of another scheme', ['--postgres', 'mysql://db/headway'], {}, '--postgres', 'invalid'],
    [
      'a Redis URL that is no URL',
      [],
      { HEADWAY_POSTGRES_URL: 'postgres://db', HEADWAY_REDIS_URL: 'cache:6379' },
      'HEADWAY_REDIS_URL',
      'invalid',
    ],
    ['Redis without PostgreSQL', ['--redis', 'redis://cache'], {}, '--redis', 'missing'],
    ['a schema without PostgreSQL', ['--postgres-schema', 'x'], {}, '--postgres-schema', 'missing'],
    [
      'a prefix without Redis',
      ['--postgres', 'postgres://db', '--redis-prefix', 'p:'],
      {},
      '--redis-prefix',
      'missing',
    ],
    [
      'an overlong schema',
      ['--postgres', 'postgres://db', '--postgres-schema', 's'.repeat(64)],
      {},
      '--postgres-schema',
      'invalid',
    ],
    ['a negative idle check', ['--idle-check-ms', '-1'], {}, '--idle-check-ms', 'invalid'],
  ] as const)('refuses %s', (_what, argv, env, setting, reason) => {
    const err = configError(() => loadConfig([...argv], { ...env }));
    expect(err.setting).toBe(setting);
    expect(err.reason).toBe(reason);
    expect(err.message).toContain(setting);
  });

  it('never echoes a refused URL, which may hold a password', () => {
    const err = configError(() => loadConfig(['--postgres', 'mysql://user:hunter2@db/x'], {}));
    expect(err.message).not.toContain('hunter2');
  });
});

describe('resolveSecrets', () => {
  let dir: string;
  beforeEach(() => {
    dir = mkdtempSync(join(tmpdir(), 'headway-config-'));
  });
  afterEach(() => {
    rmSync(dir, { recursive: true, force: true });
  });

  describe('in production', () => {
    it('names both missing settings', () => {
      const err = configError(() => resolveSecrets({ production: true, dataDir: dir }));
      expect(err.reason).toBe('missing');
      expect(err.setting).toBe('HEADWAY_JWT_SECRET');
      expect(err.settings).toEqual(['HEADWAY_JWT_SECRET', 'HEADWAY_API_KEYS']);
      expect(err.message).toContain('HEADWAY_JWT_SECRET');
      expect(err.message).toContain('HEADWAY_API_KEYS');
    });

    it('names only the missing setting', () => {
      const noKeys = configError(() => resolveSecrets({ production: true, dataDir: dir, jwtSecret: SECRET }));
      expect(noKeys.settings).toEqual(['HEADWAY_API_KEYS']);
      const noSecret = configError(() =>
        resolveSecrets({ production: true, dataDir: dir, apiKeys: [KEY_A] }),
      );
      expect(noSecret.settings).toEqual(['HEADWAY_JWT_SECRET']);
    });

    it('never falls back to secrets.json', () => {
      resolveSecrets({ dataDir: dir });
      expect(() => resolveSecrets({ production: true, dataDir: dir })).toThrow(ConfigError);
    });

    it('starts with configured secrets, writes no file, and warns about an empty origin list', () => {
      const out = resolveSecrets({ production: true, dataDir: dir, jwtSecret: SECRET, apiKeys: [KEY_A] });
      expect(out.config).toMatchObject({ jwtSecret: SECRET, apiKeys: [KEY_A] });
      expect(out.file).toBeNull();
      expect(out.developmentKey).toBeNull();
      expect(readdirSync(dir)).toEqual([]);
      expect(out.warnings).toHaveLength(1);
      expect(out.warnings[0]).toContain('HEADWAY_ALLOWED_ORIGINS');
    });

    it('does not warn when origins are configured', () => {
      const out = resolveSecrets({
        production: true,
        jwtSecret: SECRET,
        apiKeys: [KEY_A],
        allowedOrigins: ['https://app.example.com'],
      });
      expect(out.warnings).toEqual([]);
    });
  });

  describe('in development', () => {
    it('creates secrets.json with mode 0600 and reuses it on the next start', () => {
      const first = resolveSecrets({ dataDir: dir });
      const file = join(dir, SECRETS_FILE);
      expect(first.file).toBe(file);
      expect(first.created).toBe(true);
      if (process.platform !== 'win32') expect(statSync(file).mode & 0o777).toBe(0o600);
      const stored = JSON.parse(readFileSync(file, 'utf8'));
      expect(Buffer.byteLength(stored.jwtSecret)).toBeGreaterThanOrEqual(32);
      expect(stored.apiKey.length).toBeGreaterThanOrEqual(16);
      expect(first.config).toMatchObject({ jwtSecret: stored.jwtSecret, apiKeys: [stored.apiKey] });
      expect(first.developmentKey).toBe(stored.apiKey);

      const second = resolveSecrets({ dataDir: dir });
      expect(second.created).toBe(false);
      expect(second.config.jwtSecret).toBe(first.config.jwtSecret);
      expect(second.config.apiKeys).toEqual(first.config.apiKeys);
      // No temporary files left behind.
      expect(readdirSync(dir)).toEqual([SECRETS_FILE]);
    });

    it('creates the data directory when it does not exist', () => {
      const nested = join(dir, 'a', 'b');
      const out = resolveSecrets({ dataDir: nested });
      expect(out.file).toBe(join(nested, SECRETS_FILE));
    });

    it('keeps browser tokens valid across restarts', async () => {
      const before = new Auth(resolveSecrets({ dataDir: dir }).config);
      const { token } = await before.mint({ user: 'demo', ttl: 60 });
      const after = new Auth(resolveSecrets({ dataDir: dir }).config);
      await expect(after.verifyToken(token)).resolves.toMatchObject({ kind: 'user', user: 'demo' });
    });

    it('uses configured secrets as they are and touches no file', () => {
      const out = resolveSecrets({ dataDir: dir, jwtSecret: SECRET, apiKeys: [KEY_A] });
      expect(out.config).toMatchObject({ jwtSecret: SECRET, apiKeys: [KEY_A] });
      expect(out.file).toBeNull();
      expect(readdirSync(dir)).toEqual([]);
    });

    it('fills in only what is missing', () => {
      const keysOnly = resolveSecrets({ dataDir: dir, apiKeys: [KEY_A] });
      expect(keysOnly.config.apiKeys).toEqual([KEY_A]);
      expect(keysOnly.developmentKey).toBeNull();
      const stored = JSON.parse(readFileSync(join(dir, SECRETS_FILE), 'utf8'));
      expect(keysOnly.config.jwtSecret).toBe(stored.jwtSecret);

      const secretOnly = resolveSecrets({ dataDir: dir, jwtSecret: SECRET });
      expect(secretOnly.config.jwtSecret).toBe(SECRET);
      expect(secretOnly.config.apiKeys).toEqual([stored.apiKey]);
      expect(secretOnly.developmentKey).toBe(stored.apiKey);
    });

    it('refuses a damaged secrets.json, naming the file', () => {
      const file = join(dir, SECRETS_FILE);
      writeFileSync(file, '{"jwtSecret": "short"}', { mode: 0o600 });
      const err = configError(() => resolveSecrets({ dataDir: dir }));
      expect(err.setting).toBe(file);
      expect(err.message).toContain(file);
      writeFileSync(file, 'not json');
      expect(configError(() => resolveSecrets({ dataDir: dir })).setting).toBe(file);
    });

    it.skipIf(process.platform === 'win32')(
      'restricts a secrets.json readable by others, with a warning',
      () => {
        resolveSecrets({ dataDir: dir });
        const file = join(dir, SECRETS_FILE);
        chmodSync(file, 0o644);
        const out = resolveSecrets({ dataDir: dir });
        expect(statSync(file).mode & 0o777).toBe(0o600);
        expect(out.warnings.join('\n')).toContain('0600');
      },
    );

    it('resolves the configuration loadConfig produced from the environment', () => {
      const config: HeadwayOptionsInput = loadConfig(['--data-dir', dir], { HEADWAY_API_KEYS: KEY_A });
      const out = resolveSecrets(config);
      expect(out.config).toMatchObject({ dataDir: dir, apiKeys: [KEY_A] });
      expect(out.file).toBe(join(dir, SECRETS_FILE));
    });
  });
});

describe('limits and retention settings', () => {
  it('reads every limit from its flag or variable, the flag winning', () => {
    const config = loadConfig(['--max-subscriptions', '7', '--retention-events-days', '3'], {
      HEADWAY_MAX_SUBSCRIPTIONS: '9',
      HEADWAY_CONNECTIONS_PER_USER: '2',
      HEADWAY_HEARTBEAT_MS: '1000',
      HEADWAY_RETENTION_JOBS_DAYS: '5',
      HEADWAY_SHUTDOWN_TIMEOUT_MS: '2500',
    });
    expect(config.limits).toEqual({ maxSubscriptions: 7, connectionsPerUser: 2, heartbeatMs: 1000 });
    expect(config.retention).toEqual({ eventsDays: 3, jobsDays: 5 });
    expect(config.shutdownTimeoutMs).toBe(2500);
  });

  it('reads the stall thresholds', () => {
    const config = loadConfig(['--stall-factor', '5'], {
      HEADWAY_STALL_MIN_MS: '2000',
      HEADWAY_STALL_DEFAULT_MS: '30000',
      HEADWAY_STALL_CHECK_MS: '500',
    });
    expect(config.stall).toEqual({ factor: 5, minMs: 2000, defaultMs: 30_000, checkMs: 500 });
  });

  it('names the setting of an invalid number', () => {
    for (const [argv, env, setting] of [
      [['--replay-limit', '0'], {}, '--replay-limit'],
      [[], { HEADWAY_MAX_MESSAGE_BYTES: '64k' }, 'HEADWAY_MAX_MESSAGE_BYTES'],
      [[], { HEADWAY_RETENTION_BATCH_SIZE: '-1' }, 'HEADWAY_RETENTION_BATCH_SIZE'],
    ] as const) {
      expect(() => loadConfig([...argv], env)).toThrow(expect.objectContaining({ setting }));
    }
  });
});

describe('dialect settings', () => {
  it('reads the dialects and their prefix, with the seeds’ numbers as aliases', () => {
    expect(loadConfig(['--dialects', 'job-stream, seed3', '--dialect-prefix', '/compat'], {})).toEqual({
      dialects: { enabled: ['job-stream', 'download-status'], prefix: '/compat' },
    });
    expect(loadConfig([], { HEADWAY_DIALECTS: 'none', HEADWAY_DIALECT_PREFIX: '/' })).toEqual({
      dialects: { enabled: [], prefix: '' },
    });
    expect(loadConfig([], { HEADWAY_DIALECTS: 'ALL' })).toEqual({
      dialects: { enabled: [...DIALECT_NAMES] },
    });
    expect(loadConfig(['--dialects=seed-0,user-progress'], { HEADWAY_DIALECTS: 'bogus' })).toEqual({
      dialects: { enabled: ['user-progress'] },
    });
  });

  it('reads the job-stream connection rate and the dashboard connection limit', () => {
    expect(
      loadConfig(['--dialect-stream-connections-per-minute', '60'], {
        HEADWAY_DIALECT_DASHBOARD_CONNECTIONS_PER_USER: '3',
      }),
    ).toEqual({ dialects: { streamConnectionsPerMinute: 60, dashboardConnectionsPerUser: 3 } });
  });

  it('keeps the defaults of what is not set', () => {
    const options = resolveOptions(loadConfig([], { HEADWAY_DIALECTS: 'seed2' }));
    expect(options.dialects).toEqual({
      enabled: ['job-stream'],
      prefix: '',
      streamConnectionsPerMinute: 10,
      dashboardConnectionsPerUser: 5,
      historyRequestsPerMinute: 30,
    });
    expect(resolveOptions({}).dialects.enabled).toEqual([...DIALECT_NAMES]);
  });

  it('names the setting of an unknown dialect, an empty entry or a bad prefix', () => {
    expect(configError(() => loadConfig(['--dialects', 'seed9'], {})).setting).toBe('--dialects');
    expect(configError(() => loadConfig([], { HEADWAY_DIALECTS: 'job-stream,,seed1' })).setting).toBe(
      'HEADWAY_DIALECTS',
    );
    for (const prefix of ['compat', '/compat/', '/a b', '/a?b']) {
      const err = configError(() => loadConfig([], { HEADWAY_DIALECT_PREFIX: prefix }));
      expect(err.setting, prefix).toBe('HEADWAY_DIALECT_PREFIX');
      expect(err.reason).toBe('invalid');
    }
    expect(
      configError(() => loadConfig(['--dialect-stream-connections-per-minute', 'many'], {})).setting,
    ).toBe('--dialect-stream-connections-per-minute');
  });
});

describe('webhook settings', () => {
  it('reads each from its flag or variable, over the defaults', () => {
    const config = loadConfig(['--webhook-timeout-ms', '5000', '--webhook-allow-private'], {
      HEADWAY_WEBHOOK_RETRY_FOR_MS: '3600000',
      HEADWAY_WEBHOOK_ALLOW_HTTP: '1',
    });
    expect(config.webhooks).toEqual({
      timeoutMs: 5000,
      retryForMs: 3_600_000,
      allowPrivate: true,
      allowHttp: true,
    });
    const options = resolveOptions(config);
    expect(options.webhooks).toMatchObject({ timeoutMs: 5000, concurrency: 32, leaseMs: 60_000 });
    expect(resolveOptions({}).webhooks).toMatchObject({
      allowPrivate: false,
      allowHttp: false,
      retryForMs: 86_400_000,
    });
  });

  it('refuses bad values, naming the setting', () => {
    expect(() => loadConfig(['--webhook-concurrency', '0'], {})).toThrow(ConfigError);
    expect(() => loadConfig([], { HEADWAY_WEBHOOK_ALLOW_HTTP: 'maybe' })).toThrow(
      /HEADWAY_WEBHOOK_ALLOW_HTTP/,
    );
  });
});
