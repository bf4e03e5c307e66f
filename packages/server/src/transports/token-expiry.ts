/**
 * A timer per connection at its browser token's `exp`. The heartbeat sweep also
 * closes connections with expired tokens, but only every `heartbeatMs` (30 s by
 * default): an expired token would keep receiving for that long.
 */
import type { Principal } from '../auth.js';
import { tokenExpired } from './heartbeat.js';

/** Longest delay `setTimeout` takes (about 24.8 days); a longer wait is made of several. */
const MAX_TIMER_MS = 2 ** 31 - 1;

/** A pending expiry; `cancel` when the connection ends first. */
export interface TokenExpiry {
  cancel(): void;
}

const NEVER: TokenExpiry = { cancel() {} };

/**
 * Call `onExpire` once the principal's token has expired; never for an API key.
 * The timer is unref'd: it never keeps the process alive.
 */
export function atTokenExpiry(principal: Principal | null, onExpire: () => void): TokenExpiry {
  if (principal?.kind !== 'user' || principal.exp === null) return NEVER;
  const expMs = principal.exp * 1000;
  let timer: NodeJS.Timeout | null = null;
  const arm = () => {
    timer = setTimeout(
      () => {
        timer = null;
        if (tokenExpired(principal, Date.now() / 1000)) onExpire();
        else arm();
      },
      Math.min(Math.max(0, expMs - Date.now()), MAX_TIMER_MS),
    );
    timer.unref();
  };
  arm();
  return {
    cancel() {
      if (timer) clearTimeout(timer);
      timer = null;
    },
  };
}
