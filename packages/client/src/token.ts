/**
 * The token the client offers: a fixed string, or what a token function returns,
 * asked again when the hub refused the token or its `exp` is near.
 */
import type { ClientParts } from './client-parts.js';
import { ClientErrorCode, HeadwayClientError } from './errors.js';

/** The claims of a JWT, or null for anything else (an API key). */
export function claims(token: string): { sub?: string; exp?: number; role?: string; jobs?: string[] } | null {
  try {
    const bytes = atob(token.split('.')[1]!.replace(/-/g, '+').replace(/_/g, '/'));
    return JSON.parse(new TextDecoder().decode(Uint8Array.from(bytes, (c) => c.charCodeAt(0))));
  } catch {
    return null;
  }
}

export interface TokenKeeper {
  /** The token to offer now; '' until a token function first answered. */
  readonly value: string;
  /** Whether a refused token can be replaced: true for a token function, false for a fixed string. */
  readonly renewable: boolean;
  /** The token, from the token function when there is none yet or the current one was refused. */
  get(): Promise<string>;
  /** Take the current token as refused: the next `get()` asks the token function again. */
  refuse(): void;
  /** Refuse the current token if its `exp` has passed (an SSE stream cannot say why it was refused). */
  refuseIfExpired(): void;
  /** Cancel the refresh planned before `exp`. */
  stop(): void;
}

export function createTokenKeeper(
  parts: Pick<ClientParts, 'settings' | 'connection' | 'report'>,
): TokenKeeper {
  const { token: source, tokenRefreshMarginMs } = parts.settings.options;
  const fixed = typeof source === 'string';
  let token = fixed ? source : '';
  let stale = false;
  let call: Promise<string> | null = null;
  let refreshTimer: ReturnType<typeof setTimeout> | undefined;

  function get(force: boolean): Promise<string> {
    if (fixed || (token && !force)) return Promise.resolve(token);
    call ??= (async () => {
      try {
        const value = await source();
        if (typeof value !== 'string' || !value) throw 0;
        token = value;
        stale = false;
        refreshBeforeExpiry();
        return value;
      } catch {
        const error = new HeadwayClientError(ClientErrorCode.TOKEN, 'token function failed');
        parts.report(error);
        throw error;
      } finally {
        call = null;
      }
    })();
    return call;
  }

  /** Shortly before the token expires, get a new one and move the connection over to it. */
  function refreshBeforeExpiry(): void {
    clearTimeout(refreshTimer);
    const exp = claims(token)?.exp;
    if (typeof exp !== 'number') return;
    const left = exp * 1000 - Date.now();
    refreshTimer = setTimeout(
      async function refreshToken() {
        try {
          await get(true);
        } catch {
          // The hub will close with a refresh-token code; the next connection tries again.
          return;
        }
        // Ahead of `exp`: move the connection over to the new token.
        parts.connection.renew();
      },
      Math.max(0, left - Math.min(tokenRefreshMarginMs, left / 2)),
    );
  }

  return {
    get value() {
      return token;
    },
    renewable: !fixed,
    get: () => get(stale),
    refuse() {
      stale = true;
    },
    refuseIfExpired() {
      stale ||= (claims(token)?.exp ?? Infinity) * 1000 <= Date.now();
    },
    stop: () => clearTimeout(refreshTimer),
  };
}
