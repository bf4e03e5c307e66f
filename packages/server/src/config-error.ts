/** The error of a configuration mistake, shared by `loadConfig` and the secrets it checks. */
import { ServerErrorCode } from './error-codes.js';

/** Why a setting was refused. */
export type ConfigErrorReason = 'unknown' | 'invalid' | 'missing' | 'unsupported';

/** A configuration mistake; the CLI prints `message` and exits with code 2. */
export class ConfigError extends Error {
  readonly code = ServerErrorCode.CONFIG;
  /** Every setting at fault, e.g. `['HEADWAY_JWT_SECRET', 'HEADWAY_API_KEYS']`. */
  readonly settings: readonly string[];
  constructor(
    /** The (first) flag or variable at fault, e.g. `--port` or `HEADWAY_PORT`. */
    readonly setting: string,
    message: string,
    readonly reason: ConfigErrorReason = 'invalid',
    settings: readonly string[] = [setting],
  ) {
    super(message);
    this.name = 'ConfigError';
    this.settings = settings;
  }
}
