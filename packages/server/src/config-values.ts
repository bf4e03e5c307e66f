/**
 * The value parsers of `headway start`: each turns one flag's or variable's text
 * into an option, or throws a `ConfigError` naming the setting at fault.
 * Messages never echo a value that may hold a password (server URLs).
 */
import { ConfigError } from './config-error.js';
import {
  DIALECT_ALIASES,
  DIALECT_NAMES,
  DIALECT_PREFIX,
  type DialectName,
  type HeadwayOptions,
} from './options.js';

export type LogLevel = HeadwayOptions['logLevel'];

/** pino's levels, plus `silent`. */
export const LOG_LEVELS: readonly LogLevel[] = ['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'];

/** Shortest API key accepted, characters: shorter keys can be guessed. */
export const MIN_API_KEY_LENGTH = 16;
/** Shortest HS256 secret accepted, bytes (RFC 7518 §3.2: at least the hash size). */
export const MIN_JWT_SECRET_BYTES = 32;

/** A server URL with one of the schemes; the value is never echoed, since it may hold a password. */
export function parseServerUrl(value: string, setting: string, schemes: string[]): string {
  let url: URL | null = null;
  try {
    url = new URL(value.trim());
  } catch {
    // reported below
  }
  if (url === null || !schemes.includes(url.protocol) || url.hostname === '') {
    throw new ConfigError(setting, `${setting} must be a URL of the form ${schemes[0]}//host[:port]/…`);
  }
  return value.trim();
}

/** A TCP port, 0 (any free port) to 65535. */
export function parsePort(value: string, setting: string): number {
  const port = /^\d{1,5}$/.test(value.trim()) ? Number(value.trim()) : Number.NaN;
  if (!(port >= 0 && port <= 65535)) {
    throw new ConfigError(setting, `${setting} must be an integer from 0 to 65535 (got "${value}")`);
  }
  return port;
}

/** The value itself, refused when blank; `what` names what was expected. */
export function nonEmpty(value: string, setting: string, what: string): string {
  if (value.trim() === '') throw new ConfigError(setting, `${setting} must be ${what} (got an empty value)`);
  return value;
}

/** Comma-separated list; an empty entry is most likely a typo (`a,,b`) and refused. */
function splitList(value: string, setting: string): string[] {
  return value.split(',').map((item, i) => {
    const trimmed = item.trim();
    if (trimmed === '') throw new ConfigError(setting, `${setting} has an empty entry at position ${i + 1}`);
    return trimmed;
  });
}

/** Comma-separated API keys, each at least `MIN_API_KEY_LENGTH` characters. */
export function parseApiKeys(value: string, setting: string): string[] {
  const keys = splitList(value, setting);
  keys.forEach((key, i) => {
    if (key.length < MIN_API_KEY_LENGTH) {
      throw new ConfigError(
        setting,
        `${setting}: key ${i + 1} is too short (${key.length} characters; at least ${MIN_API_KEY_LENGTH})`,
      );
    }
  });
  return keys;
}

/** Origins as browsers send them: `scheme://host[:port]`, lower-case, no path; or `*`. */
export function parseOrigins(value: string, setting: string): string[] {
  return splitList(value, setting).map((entry) => {
    if (entry === '*') return entry;
    let url: URL | null = null;
    try {
      url = new URL(entry);
    } catch {
      // reported below
    }
    const ok =
      url !== null &&
      (url.protocol === 'http:' || url.protocol === 'https:') &&
      url.username === '' &&
      url.password === '' &&
      url.pathname === '/' &&
      url.search === '' &&
      url.hash === '' &&
      !/[?#]/.test(entry);
    if (!ok || url === null) {
      throw new ConfigError(
        setting,
        `${setting}: "${entry}" is not an origin (expected http(s)://host[:port] without a path, or *)`,
      );
    }
    return url.origin;
  });
}

/** `all`, `none`, or a comma-separated list of dialect names (or their `seedN` aliases). */
export function parseDialects(value: string, setting: string): DialectName[] {
  const v = value.trim().toLowerCase();
  if (v === 'all') return [...DIALECT_NAMES];
  if (v === 'none') return [];
  const names = splitList(v, setting).map((entry) => {
    const name = (DIALECT_NAMES as readonly string[]).includes(entry)
      ? (entry as DialectName)
      : DIALECT_ALIASES[entry.replace('-', '')];
    if (name === undefined) {
      throw new ConfigError(
        setting,
        `${setting}: unknown dialect "${entry}" (known: ${DIALECT_NAMES.join(', ')}, seed0–seed4, all, none)`,
      );
    }
    return name;
  });
  return [...new Set(names)];
}

/** A path prefix: `/` and URL path segments, without a trailing slash; `/` alone means none. */
export function parsePrefix(value: string, setting: string): string {
  const v = value.trim();
  if (v === '/') return '';
  if (!DIALECT_PREFIX.test(v)) {
    throw new ConfigError(
      setting,
      `${setting} must be a path such as /compat (letters, digits and ._~- between slashes; got "${value}")`,
    );
  }
  return v;
}

/** One of `LOG_LEVELS`, in any case. */
export function parseLogLevel(value: string, setting: string): LogLevel {
  const level = value.trim().toLowerCase();
  if (!(LOG_LEVELS as readonly string[]).includes(level)) {
    throw new ConfigError(setting, `${setting} must be one of ${LOG_LEVELS.join(', ')} (got "${value}")`);
  }
  return level as LogLevel;
}

const LOG_FORMATS: readonly HeadwayOptions['logFormat'][] = ['auto', 'pretty', 'json'];

/** `auto`, `pretty` or `json`, in any case. */
export function parseLogFormat(value: string, setting: string): HeadwayOptions['logFormat'] {
  const format = value.trim().toLowerCase();
  if (!(LOG_FORMATS as readonly string[]).includes(format)) {
    throw new ConfigError(setting, `${setting} must be one of ${LOG_FORMATS.join(', ')} (got "${value}")`);
  }
  return format as HeadwayOptions['logFormat'];
}

const TRUE = new Set(['1', 'true', 'yes', 'on']);
const FALSE = new Set(['0', 'false', 'no', 'off']);

/** A flag without a value is true; a variable takes 1/0, true/false, yes/no or on/off. */
export function parseBoolean(value: string | boolean, setting: string): boolean {
  if (typeof value === 'boolean') return value;
  const v = value.trim().toLowerCase();
  if (TRUE.has(v)) return true;
  if (FALSE.has(v)) return false;
  throw new ConfigError(setting, `${setting} must be 1 or 0 (or true/false, yes/no, on/off; got "${value}")`);
}

/** A whole number of at least 1 (a limit or a duration). */
export function parsePositiveInteger(raw: string, setting: string): number {
  const value = Number(raw);
  if (!/^\d+$/.test(raw.trim()) || !Number.isSafeInteger(value) || value < 1) {
    throw new ConfigError(setting, `${setting} must be a positive integer (got "${raw}")`);
  }
  return value;
}
