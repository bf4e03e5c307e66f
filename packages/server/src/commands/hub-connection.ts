/**
 * How `headway run` and `headway watch` find the hub and their credentials,
 * and the words both use when that fails: one rule for both commands.
 *
 * The hub is `--url`, else `HEADWAY_URL`, else a development hub on this
 * machine (`http://127.0.0.1:7070`). The credential is `--api-key`, else
 * `HEADWAY_TOKEN` (watch only), else `HEADWAY_API_KEY`, else the API key a
 * development hub keeps in `<data-dir>/secrets.json` (`--data-dir`, else
 * `HEADWAY_DATA_DIR`, else `.headway`).
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';

/** Where `headway start` listens by default. */
export const DEFAULT_HUB_URL = 'http://127.0.0.1:7070';
/** How long the reachability check waits for the hub, ms. */
const CHECK_TIMEOUT_MS = 5_000; // 5 seconds

/** The connection flags both commands accept. */
export const CONNECTION_FLAGS = ['--url', '--api-key', '--data-dir'] as const;

export interface ConnectionFlags {
  url?: string;
  apiKey?: string;
  dataDir?: string;
}

export interface Credential {
  kind: 'api-key' | 'token';
  value: string;
  /** Where it came from, in the words of the command line: `--api-key`, `HEADWAY_TOKEN`, a file. */
  source: string;
}

export const CONNECTION_HELP = `Connection (the same for headway run and headway watch):
  --url <url>            the hub (default $HEADWAY_URL, else ${DEFAULT_HUB_URL})
  --api-key <key>        an API key of the hub (default $HEADWAY_API_KEY)
  --data-dir <dir>       where a development hub keeps secrets.json, whose API key is
                         used when no other is given (default $HEADWAY_DATA_DIR or .headway)`;

/** The hub's base URL, without a trailing slash. */
export function hubUrl(flags: ConnectionFlags, env: NodeJS.ProcessEnv): string {
  return (flags.url ?? (env.HEADWAY_URL || DEFAULT_HUB_URL)).replace(/\/+$/, '');
}

/** The first credential found, in the documented order; null when there is none. */
export function findCredential(
  flags: ConnectionFlags,
  env: NodeJS.ProcessEnv,
  options: { tokens: boolean },
): Credential | null {
  if (flags.apiKey) return { kind: 'api-key', value: flags.apiKey, source: '--api-key' };
  if (options.tokens && env.HEADWAY_TOKEN)
    return { kind: 'token', value: env.HEADWAY_TOKEN, source: 'HEADWAY_TOKEN' };
  if (env.HEADWAY_API_KEY) return { kind: 'api-key', value: env.HEADWAY_API_KEY, source: 'HEADWAY_API_KEY' };
  const file = join(flags.dataDir ?? (env.HEADWAY_DATA_DIR || '.headway'), 'secrets.json');
  const key = developmentKey(file);
  return key ? { kind: 'api-key', value: key, source: file } : null;
}

function developmentKey(file: string): string | undefined {
  try {
    const secrets = JSON.parse(readFileSync(file, 'utf8')) as { apiKey?: unknown };
    return typeof secrets.apiKey === 'string' ? secrets.apiKey : undefined;
  } catch {
    return undefined;
  }
}

/** What to say when no credential is found. */
export function missingCredential(options: { tokens: boolean }): string {
  return `no credentials: pass --api-key, set ${options.tokens ? 'HEADWAY_TOKEN or ' : ''}HEADWAY_API_KEY, or start a development hub here (headway start) whose .headway/secrets.json holds one`;
}

/** What to say when the hub refuses the credential: `invalid API key (from --api-key)`. */
export function credentialRefused(credential: Credential, expired = false): string {
  if (credential.kind === 'api-key') return `invalid API key (from ${credential.source})`;
  return expired
    ? `the token has expired (from ${credential.source})`
    : `invalid token (from ${credential.source})`;
}

/** What to say when nothing answers at the hub's address. */
export function unreachable(url: string, cause: string): string {
  return `cannot reach the hub at ${url} (${cause}): start one with "headway start", or give its address with --url or HEADWAY_URL`;
}

export type HubCheck =
  | { ok: true }
  | { ok: false; reason: 'unreachable' | 'refused' | 'error'; message: string };

/**
 * Ask the hub once, with the credential, for one job: tells an address where
 * nothing listens and a refused credential apart, in the same words for both
 * commands, before either starts its real work.
 */
export async function checkHub(url: string, credential: Credential): Promise<HubCheck> {
  let res: Response;
  try {
    res = await fetch(`${url}/v1/jobs?limit=1`, {
      headers: { authorization: `Bearer ${credential.value}` },
      signal: AbortSignal.timeout(CHECK_TIMEOUT_MS),
    });
  } catch (err) {
    const cause = (err as { cause?: { code?: string } }).cause?.code ?? (err as Error).name;
    const words =
      cause === 'ECONNREFUSED'
        ? 'connection refused'
        : cause === 'TimeoutError'
          ? `no answer within ${CHECK_TIMEOUT_MS / 1000} s`
          : cause === 'ENOTFOUND'
            ? 'no such host'
            : cause;
    return { ok: false, reason: 'unreachable', message: unreachable(url, words) };
  }
  await res.body?.cancel();
  if (res.status === 401) {
    const expired = /error="invalid_token"/.test(res.headers.get('www-authenticate') ?? '');
    return { ok: false, reason: 'refused', message: credentialRefused(credential, expired) };
  }
  if (res.status === 403) return { ok: true };
  if (!res.ok)
    return { ok: false, reason: 'error', message: `the hub at ${url} answered HTTP ${res.status}` };
  return { ok: true };
}
