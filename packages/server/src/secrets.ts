/**
 * Credentials for `headway start`.
 *
 * In production they must be configured (`HEADWAY_JWT_SECRET`,
 * `HEADWAY_API_KEYS`); the hub refuses to start without them rather than
 * invent credentials nobody else knows.
 *
 * In development whatever is missing comes from `secrets.json` in the data
 * directory, generated on first start. Keeping them on disk (mode 0600) means
 * a restart does not invalidate the browser tokens and the API key that the
 * developer already pasted into a worker or a page.
 */
import {
  chmodSync,
  linkSync,
  mkdirSync,
  readFileSync,
  renameSync,
  statSync,
  unlinkSync,
  writeFileSync,
} from 'node:fs';
import { join, resolve } from 'node:path';
import { generateSecret } from './auth.js';
import { ConfigError, MIN_API_KEY_LENGTH, MIN_JWT_SECRET_BYTES } from './config.js';
import { defaults, type HeadwayOptionsInput } from './options.js';

/** Name of the development credentials file inside the data directory. */
export const SECRETS_FILE = 'secrets.json';

/** Contents of `secrets.json`. */
export interface DevelopmentSecrets {
  jwtSecret: string;
  apiKey: string;
}

export interface ResolvedSecrets {
  /** The configuration with `jwtSecret` and `apiKeys` filled in. */
  config: HeadwayOptionsInput & { jwtSecret: string; apiKeys: string[] };
  /** Absolute path of `secrets.json` when any credential came from it, else null. */
  file: string | null;
  /** True when `secrets.json` was written by this call. */
  created: boolean;
  /**
   * The development API key from `secrets.json` when it is in use (safe to print
   * in the start-up banner); null when the keys were configured.
   */
  developmentKey: string | null;
  /** Things the operator should know, for stderr. */
  warnings: string[];
}

/**
 * Fill in the credentials of a configuration from `loadConfig()`.
 *
 * @throws ConfigError in production when `HEADWAY_JWT_SECRET` or `HEADWAY_API_KEYS` is missing
 *   (naming each), or when an existing `secrets.json` is unreadable.
 */
export function resolveSecrets(config: HeadwayOptionsInput): ResolvedSecrets {
  const warnings: string[] = [];
  const jwtSecret = config.jwtSecret;
  const apiKeys = config.apiKeys ?? [];

  if (config.production) {
    const missing = [
      ...(jwtSecret ? [] : ['HEADWAY_JWT_SECRET']),
      ...(apiKeys.length > 0 ? [] : ['HEADWAY_API_KEYS']),
    ];
    if (missing.length > 0) {
      throw new ConfigError(
        missing[0]!,
        `production mode needs ${missing.join(' and ')}: ` +
          `set HEADWAY_JWT_SECRET to a random string of at least ${MIN_JWT_SECRET_BYTES} bytes ` +
          `(e.g. openssl rand -base64 48) and HEADWAY_API_KEYS to comma-separated keys of at least ` +
          `${MIN_API_KEY_LENGTH} characters`,
        'missing',
        missing,
      );
    }
    if ((config.allowedOrigins ?? []).length === 0) {
      warnings.push(
        'HEADWAY_ALLOWED_ORIGINS is empty: browsers may connect only from pages served by this hub ' +
          '(same origin); set it to the origins of your web app to allow them',
      );
    }
    return {
      config: { ...config, jwtSecret: jwtSecret!, apiKeys },
      file: null,
      created: false,
      developmentKey: null,
      warnings,
    };
  }

  if (jwtSecret && apiKeys.length > 0) {
    return {
      config: { ...config, jwtSecret, apiKeys },
      file: null,
      created: false,
      developmentKey: null,
      warnings,
    };
  }

  const dataDir = config.dataDir ?? defaults.dataDir;
  const { secrets, file, created } = readOrCreateSecrets(dataDir, warnings);
  const useFileKey = apiKeys.length === 0;
  return {
    config: {
      ...config,
      jwtSecret: jwtSecret || secrets.jwtSecret,
      apiKeys: useFileKey ? [secrets.apiKey] : apiKeys,
    },
    file,
    created,
    developmentKey: useFileKey ? secrets.apiKey : null,
    warnings,
  };
}

/**
 * Read `secrets.json` from the data directory, or create it. Creation is atomic
 * (written to a temporary file, then hard-linked into place, which fails if the
 * file exists), so two hubs started at once on the same directory agree on one
 * set of credentials and neither reads a half-written file.
 */
export function readOrCreateSecrets(
  dataDir: string,
  warnings: string[] = [],
): { secrets: DevelopmentSecrets; file: string; created: boolean } {
  const file = resolve(dataDir, SECRETS_FILE);
  const existing = readSecrets(file, warnings);
  if (existing) return { secrets: existing, file, created: false };

  mkdirSync(dataDir, { recursive: true, mode: 0o700 });
  const secrets: DevelopmentSecrets = {
    jwtSecret: generateSecret(48),
    apiKey: `hw_dev_${generateSecret(24)}`,
  };
  const tmp = join(dataDir, `.${SECRETS_FILE}.${process.pid}.${generateSecret(6)}.tmp`);
  writeFileSync(tmp, `${JSON.stringify(secrets, null, 2)}\n`, { mode: 0o600, flag: 'wx' });
  try {
    linkSync(tmp, file);
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    if (code === 'EEXIST') {
      // Another process created it first: use theirs.
      const theirs = readSecrets(file, warnings);
      if (theirs) return { secrets: theirs, file, created: false };
    }
    // Filesystems without hard links (some network and container mounts).
    renameSync(tmp, file);
    return { secrets, file, created: true };
  } finally {
    try {
      unlinkSync(tmp);
    } catch {
      // Already renamed into place.
    }
  }
  return { secrets, file, created: true };
}

/** The secrets in `file`, or null when it does not exist. */
function readSecrets(file: string, warnings: string[]): DevelopmentSecrets | null {
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return null;
    throw new ConfigError(file, `cannot read ${file}: ${(err as Error).message}`);
  }
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch {
    value = null;
  }
  const secrets = value as Partial<DevelopmentSecrets> | null;
  if (
    typeof secrets?.jwtSecret !== 'string' ||
    Buffer.byteLength(secrets.jwtSecret) < MIN_JWT_SECRET_BYTES ||
    typeof secrets.apiKey !== 'string' ||
    secrets.apiKey.length < MIN_API_KEY_LENGTH
  ) {
    throw new ConfigError(
      file,
      `${file} is not a valid secrets file (expected {"jwtSecret": at least ${MIN_JWT_SECRET_BYTES} bytes, ` +
        `"apiKey": at least ${MIN_API_KEY_LENGTH} characters}); delete it to generate new development credentials`,
    );
  }
  // POSIX only: on Windows the mode bits do not describe who may read the file.
  if (process.platform !== 'win32' && (statSync(file).mode & 0o077) !== 0) {
    try {
      chmodSync(file, 0o600);
      warnings.push(`${file} was readable by other users; its mode is now 0600`);
    } catch (err) {
      warnings.push(`${file} is readable by other users and cannot be restricted: ${(err as Error).message}`);
    }
  }
  return { jwtSecret: secrets.jwtSecret, apiKey: secrets.apiKey };
}
