/**
 * The `headway` command. `main()` returns the exit code instead of exiting, so
 * that buffered output is flushed and the process ends on its own once nothing
 * is left on the event loop.
 *
 * Exit codes: 0 success; 1 failure at run time (cannot listen, shutdown timed
 * out); 2 configuration or usage error, including a store that cannot be opened
 * and a data directory held by another hub.
 */
import { readFileSync } from 'node:fs';
import { constants } from 'node:os';
import { resolve } from 'node:path';
import pino, { type Logger } from 'pino';
import { DEFAULT_HUB_URL } from './commands/hub-connection.js';
import { ConfigError, LOG_LEVELS, loadConfig } from './config.js';
import { nearestFlag } from './nearest-flag.js';
import { type HeadwayOptions, resolveOptions } from './options.js';
import { PrettyLog } from './pretty-log.js';
import { resolveSecrets } from './secrets.js';
import { createServer, type HeadwayServer } from './server.js';
import { describeServer, EXIT_CONFIG, startFailed } from './start-failure.js';

/** Exit code for a configuration or usage error. */
export { EXIT_CONFIG } from './start-failure.js';
/** Lifetime of the tokens printed in the development banner, seconds (24 hours). */
export const BANNER_TOKEN_TTL_SECONDS = 24 * 3600;
/** Owner of the demo jobs and user of the banner's browser token. */
export const DEMO_USER = 'demo';
/**
 * After a clean shutdown the process should end by itself at once; if a stray
 * handle still holds the event loop after this long, say what it is and exit.
 */
const LINGER_MS = 2_000; // 2 seconds

const HELP = `Usage: headway <command> [options]

Commands:
  start      start the hub
  run        run a command as a job, reporting its progress (headway run --help)
  watch      show live progress of a job or of a user's jobs (headway watch --help)
  help       show this help
  version    print the version

Options of start (each also from the environment; flags win):
  --port <n>                HEADWAY_PORT             TCP port; 0 picks a free one (default 7070)
  --host <address>          HEADWAY_HOST             interface to listen on (default 127.0.0.1)
  --data-dir <dir>          HEADWAY_DATA_DIR         SQLite file and development secrets (default .headway)
  --durability <level>      HEADWAY_DURABILITY       SQLite: normal (survives a hub crash) or full (also an OS crash or power loss)
  --allowed-origins <list>  HEADWAY_ALLOWED_ORIGINS  browser origins, comma-separated, or *
  --log-level <level>       HEADWAY_LOG_LEVEL        ${LOG_LEVELS.join('|')} (default info)
  --log-format <format>     HEADWAY_LOG_FORMAT       pretty (banner, then readable lines), json (structured
                                                     lines only) or auto: pretty on a terminal (default auto)
  --demo                    HEADWAY_DEMO=1           run demo workers that report sample jobs
  --production              HEADWAY_PRODUCTION=1     refuse to start without configured secrets

Several processes (see docs/operations.md):
  --postgres <url>          HEADWAY_POSTGRES_URL     store jobs in PostgreSQL instead of SQLite
  --postgres-schema <name>  HEADWAY_POSTGRES_SCHEMA  schema of Headway's tables (default headway)
  --redis <url>             HEADWAY_REDIS_URL        share deliveries and connection counts through Redis
  --redis-prefix <prefix>   HEADWAY_REDIS_PREFIX     prefix of Redis channels and keys (default headway:)
  --idle-check-ms <ms>      HEADWAY_IDLE_CHECK_MS    compare quiet followed jobs with the store (default 5000; 0 off)

Seed protocols (see docs/dialects.md):
  --dialects <list>         HEADWAY_DIALECTS         dialects to serve: names, seed0…seed4, all or none (default all)
  --dialect-prefix <path>   HEADWAY_DIALECT_PREFIX   path prefix of every dialect endpoint

Limits and retention: every limit has a flag and a variable, e.g. --max-subscriptions /
HEADWAY_MAX_SUBSCRIPTIONS, --retention-events-days / HEADWAY_RETENTION_EVENTS_DAYS;
docs/operations.md lists them with their defaults.

Environment only:
  HEADWAY_JWT_SECRET        HS256 secret for browser tokens, at least 32 bytes
  HEADWAY_API_KEYS          API keys of workers and back ends, comma-separated, at least 16 characters each

In development, missing secrets are generated once and kept in <data-dir>/secrets.json.
`;

const COMMANDS = ['start', 'run', 'watch', 'help', 'version'];

/** Run the `headway` command with its arguments (without `node` and the script). */
export async function main(argv: string[], env: NodeJS.ProcessEnv = process.env): Promise<number> {
  const [command, ...rest] = argv;
  switch (command) {
    case undefined:
    case 'help':
    case '--help':
    case '-h':
      process.stdout.write(HELP);
      return 0;
    case 'version':
    case '--version':
    case '-v':
      process.stdout.write(`${version()}\n`);
      return 0;
    case 'start':
      return start(rest, env);
    case 'run':
      // Loaded only on request: the hub never loads the worker SDK.
      return (await import('./commands/run.js')).run(rest, env);
    case 'watch':
      // Loaded only on request: the hub never loads the client SDK.
      return (await import('./commands/watch.js')).watch(rest, env);
    default: {
      const near = nearestFlag(command, command.startsWith('-') ? ['--help', '--version'] : COMMANDS);
      process.stderr.write(
        `headway: ${command.startsWith('-') ? 'unknown option' : 'unknown command'} ${command}` +
          `${near ? ` (did you mean ${near}?)` : ''}\nRun "headway --help" for usage.\n`,
      );
      return EXIT_CONFIG;
    }
  }
}

/** The version of @headway/server (`../package.json` from both `src/` and `dist/`). */
export function version(): string {
  const pkg = JSON.parse(readFileSync(new URL('../package.json', import.meta.url), 'utf8')) as {
    version: string;
  };
  return pkg.version;
}

async function start(argv: string[], env: NodeJS.ProcessEnv): Promise<number> {
  if (argv.includes('--help') || argv.includes('-h')) {
    process.stdout.write(HELP);
    return 0;
  }
  let secrets: ReturnType<typeof resolveSecrets>;
  try {
    secrets = resolveSecrets(loadConfig(argv, env));
  } catch (err) {
    if (err instanceof ConfigError) {
      process.stderr.write(`headway: ${err.message}\n`);
      return EXIT_CONFIG;
    }
    // Only the file system fails here: the data directory or secrets.json cannot be written.
    process.stderr.write(
      `headway: cannot prepare the development secrets: ${(err as Error)?.message ?? err}\n`,
    );
    return 1;
  }
  for (const warning of secrets.warnings) process.stderr.write(`headway: warning: ${warning}\n`);

  const options = resolveOptions(secrets.config);
  const color = process.stdout.isTTY === true && !env.NO_COLOR;
  const pretty =
    options.logFormat === 'pretty' || (options.logFormat === 'auto' && process.stdout.isTTY === true)
      ? new PrettyLog({ out: process.stdout, color })
      : null;
  const logger = pretty
    ? pino({ level: options.logLevel, name: 'headway' }, pretty)
    : pino({ level: options.logLevel, name: 'headway' });

  let server: HeadwayServer;
  try {
    server = await createServer({ ...secrets.config, logger });
  } catch (err) {
    return startFailed(err, options);
  }
  let url: string;
  try {
    url = await server.listen();
  } catch (err) {
    await server.close().catch(() => {});
    return startFailed(err, options);
  }

  // Handlers go in before anything slow, so that a signal during start-up still shuts down cleanly.
  const exit = shutdownOnSignal(server, options, logger);

  if (options.demo) {
    try {
      // Loaded only on request: a production hub never loads the demo workers.
      const { startDemo } = await import('./demo/index.js');
      exit.setDemo(
        await startDemo({
          url,
          apiKey: options.apiKeys[0]!,
          owner: DEMO_USER,
          logger: logger.child({ component: 'demo' }),
        }),
      );
    } catch (err) {
      process.stderr.write(`headway: cannot start the demo workers: ${(err as Error)?.message ?? err}\n`);
      await exit.shutdown('demo failed');
      return 1;
    }
  }

  const facts = { server, url, options, secretsFile: secrets.file, developmentKey: secrets.developmentKey };
  if (pretty) {
    // The banner whole, then the log lines held back meanwhile: never the two interleaved.
    process.stdout.write(await banner({ ...facts, color }));
    pretty.release();
  } else {
    logger.info(await startupRecord(facts), 'ready');
  }
  return exit.code;
}

/**
 * Graceful shutdown on SIGTERM and SIGINT: stop the demo workers, close the server
 * (clients get a "going away, reconnect" close code; the store is flushed), then
 * let the process end. A second signal, or a shutdown slower than
 * `shutdownTimeoutMs`, exits at once.
 */
function shutdownOnSignal(server: HeadwayServer, options: HeadwayOptions, logger: Logger) {
  let demo: { stop(): Promise<void> } | null = null;
  let stopping = false;
  let settle: (code: number) => void = () => {};
  const code = new Promise<number>((resolveCode) => (settle = resolveCode));

  const onSignal = (signal: NodeJS.Signals) => {
    if (stopping) {
      process.stderr.write(`headway: ${signal} received again, exiting without finishing the shutdown\n`);
      process.exit(128 + (constants.signals[signal] ?? 0));
    }
    void shutdown(signal);
  };

  const shutdown = (reason: string): Promise<number> => {
    if (stopping) return code;
    stopping = true;
    logger.info({ reason }, 'shutting down');
    const timer = setTimeout(() => {
      process.stderr.write(`headway: shutdown took longer than ${options.shutdownTimeoutMs} ms, exiting\n`);
      process.exit(1);
    }, options.shutdownTimeoutMs);
    // Deliberately not unref'd: should the shutdown stall on a promise that no
    // handle backs, this timer is what turns the stall into a clear exit 1.

    void (async function drain() {
      let exitCode = 0;
      try {
        await demo?.stop();
      } catch (err) {
        logger.error({ err }, 'stopping the demo workers failed');
      }
      try {
        await server.close();
        logger.info('stopped');
      } catch (err) {
        logger.error({ err }, 'shutdown failed');
        exitCode = 1;
      } finally {
        clearTimeout(timer);
        process.off('SIGTERM', onSignal);
        process.off('SIGINT', onSignal);
      }
      setTimeout(() => {
        const handles = process.getActiveResourcesInfo().filter((r) => r !== 'Timeout');
        process.stderr.write(
          `headway: still running ${LINGER_MS} ms after shutdown (open: ${handles.join(', ') || 'unknown'}), exiting\n`,
        );
        process.exit(exitCode);
      }, LINGER_MS).unref();
      settle(exitCode);
    })();
    return code;
  };
  process.on('SIGTERM', onSignal);
  process.on('SIGINT', onSignal);

  return {
    /** Resolves with the exit code once the shutdown is over. */
    code,
    shutdown,
    setDemo(value: { stop(): Promise<void> }) {
      demo = value;
    },
  };
}

interface StartupFacts {
  server: HeadwayServer;
  url: string;
  options: HeadwayOptions;
  secretsFile: string | null;
  developmentKey: string | null;
}

interface BannerOptions extends StartupFacts {
  color: boolean;
}

/**
 * The banner's facts as one structured record, for `--log-format json`: where
 * the hub listens and, in development, the dashboard link.
 */
async function startupRecord(f: StartupFacts): Promise<Record<string, unknown>> {
  const { options, url } = f;
  const record: Record<string, unknown> = {
    version: version(),
    mode: options.production ? 'production' : 'development',
    url,
    websocket: `${url.replace(/^http/, 'ws')}/v1/ws`,
    store: options.postgresUrl
      ? `postgresql ${describeServer(options.postgresUrl)}`
      : resolve(options.dataDir),
  };
  if (options.redisUrl) record.bus = `redis ${describeServer(options.redisUrl)}`;
  if (f.secretsFile) record.secretsFile = f.secretsFile;
  if (!options.production) {
    const admin = await f.server.auth.mint({ user: 'admin', admin: true, ttl: BANNER_TOKEN_TTL_SECONDS });
    record.dashboard = `${url}/#token=${admin.token}`;
  }
  return record;
}

/** The start-up text: where the hub listens and, in development, how to try it at once. */
export async function banner(b: BannerOptions): Promise<string> {
  const bold = (s: string) => (b.color ? `\x1b[1m${s}\x1b[22m` : s);
  const dim = (s: string) => (b.color ? `\x1b[2m${s}\x1b[22m` : s);
  const { options, url } = b;
  const wsUrl = `${url.replace(/^http/, 'ws')}/v1/ws`;
  const mode = options.production ? 'production' : 'development';
  const lines: string[] = [
    '',
    `${bold(`Headway ${version()}`)} is running in ${mode} mode`,
    '',
    `  URL          ${url}`,
    `  WebSocket    ${wsUrl}`,
    options.postgresUrl
      ? `  Store        PostgreSQL ${describeServer(options.postgresUrl)}, schema ${options.postgresSchema}`
      : `  Data         ${resolve(options.dataDir)}`,
  ];
  if (options.redisUrl)
    lines.push(`  Bus          Redis ${describeServer(options.redisUrl)}, prefix ${options.redisPrefix}`);
  if (b.secretsFile) lines.push(`  Secrets      ${b.secretsFile} ${dim('(development credentials)')}`);

  if (options.production) {
    lines.push(
      '',
      'Workers report with a key from HEADWAY_API_KEYS; back ends mint browser tokens with POST /v1/tokens.',
      `Dashboard: ${url}/ (sign in with a browser token; an admin token also shows the system view)`,
      `Health: ${url}/healthz`,
    );
  } else {
    const user = await b.server.auth.mint({ user: DEMO_USER, ttl: BANNER_TOKEN_TTL_SECONDS });
    const admin = await b.server.auth.mint({ user: 'admin', admin: true, ttl: BANNER_TOKEN_TTL_SECONDS });
    const key = b.developmentKey ?? '<one of HEADWAY_API_KEYS>';
    // The commands find a hub on the default address and its development key by themselves.
    const watchFlags = url === DEFAULT_HUB_URL ? '' : ` --url ${url}`;
    lines.push(
      '',
      // The token rides in the fragment, which the browser never sends; the dashboard stores it per tab.
      `  ${bold('Dashboard')}    ${url}/#token=${admin.token}`,
      `               ${dim('open in a browser: signed in as admin, sees every job')}`,
      `  API key      ${b.developmentKey ?? dim('(configured in HEADWAY_API_KEYS)')}`,
      `  User token   ${user.token}`,
      `               ${dim(`user "${DEMO_USER}", expires ${user.expiresAt}`)}`,
      `  Admin token  ${admin.token}`,
      `               ${dim(`sees every job, expires ${admin.expiresAt}`)}`,
      '',
      bold('Try it from another terminal:'),
      '',
      `  export HEADWAY_URL=${url}`,
      `  export HEADWAY_API_KEY=${key}`,
      '',
      `  ${dim(`# create a job owned by user "${DEMO_USER}"`)}`,
      `  curl -sS -X POST "$HEADWAY_URL/v1/jobs" -H "Authorization: Bearer $HEADWAY_API_KEY" \\`,
      `    -H 'Content-Type: application/json' -d '{"id":"hello","owner":"${DEMO_USER}","name":"Hello, Headway"}'`,
      '',
      `  ${dim('# report progress')}`,
      `  curl -sS -X POST "$HEADWAY_URL/v1/jobs/hello/events" -H "Authorization: Bearer $HEADWAY_API_KEY" \\`,
      `    -H 'Content-Type: application/json' -d '{"events":[{"kind":"progress","percent":42,"message":"working"}]}'`,
      '',
      bold('Watch it live:') + ' in the dashboard above, or in a terminal:',
      '',
      `  headway watch hello${watchFlags}`,
      '',
      `  ${dim('or run any command as a job, and watch it:')} headway run --owner ${DEMO_USER}${watchFlags} -- sleep 5`,
    );
    if (options.demo) {
      lines.push(
        '',
        bold('Demo:') + ` workers are reporting sample jobs owned by "${DEMO_USER}". Watch all of them,`,
        'new ones included:',
        '',
        `  headway watch --user ${DEMO_USER}${watchFlags}`,
      );
    }
  }
  if (options.demo && options.production) {
    lines.push('', `Demo workers are reporting sample jobs owned by "${DEMO_USER}".`);
  }
  lines.push('', dim('Press Ctrl+C to stop.'), '');
  return `${lines.join('\n')}\n`;
}
