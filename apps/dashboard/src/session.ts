/**
 * The login token. The link printed by `headway start` carries it in the URL
 * fragment (`/#token=…`), which browsers never send to a server: it is read
 * once, kept in sessionStorage (this tab only, gone when the tab closes) and
 * removed from the address bar, so that it is not left in history or shared
 * by copying the URL.
 */

const STORAGE_KEY = 'headway.token';

/** What the dashboard knows about its credential (nothing here is verified: the hub does that). */
export interface Session {
  token: string;
  /** The user a browser token speaks for; null for an API key. */
  user: string | null;
  /** Admin tokens and API keys see every job and the system view. */
  privileged: boolean;
  /** Which jobs the live list watches. */
  scope: 'user' | 'all';
  /** Expiry, ms since epoch; null when unknown (API keys). */
  expiresAt: number | null;
}

/** Take a token from the URL fragment, if there is one, and clear the fragment. */
export function takeFragmentToken(): string | null {
  const hash = window.location.hash;
  if (!hash.startsWith('#')) return null;
  const token = new URLSearchParams(hash.slice(1)).get('token');
  if (!token) return null;
  window.history.replaceState(window.history.state, '', window.location.pathname + window.location.search);
  return token.trim() || null;
}

/** The token of this tab: from the fragment (stored at once), else the one stored before. */
export function loadToken(): string | null {
  const fromFragment = takeFragmentToken();
  if (fromFragment) {
    saveToken(fromFragment);
    return fromFragment;
  }
  try {
    return window.sessionStorage.getItem(STORAGE_KEY);
  } catch {
    // Storage disabled: the token lives only as long as the page.
    return null;
  }
}

export function saveToken(token: string): void {
  try {
    window.sessionStorage.setItem(STORAGE_KEY, token);
  } catch {
    // Storage disabled: keep working with the token in memory.
  }
}

export function clearToken(): void {
  try {
    window.sessionStorage.removeItem(STORAGE_KEY);
  } catch {
    // Nothing stored.
  }
}

/** The claims of a JWT, unverified; null for anything else (an API key). */
function claims(token: string): Record<string, unknown> | null {
  const parts = token.split('.');
  if (parts.length !== 3) return null;
  try {
    const json = atob(parts[1]!.replace(/-/g, '+').replace(/_/g, '/'));
    const value: unknown = JSON.parse(json);
    return value !== null && typeof value === 'object' ? (value as Record<string, unknown>) : null;
  } catch {
    return null;
  }
}

/** Describe a token: an admin or user browser token, or an API key. */
export function describeToken(token: string): Session {
  const c = claims(token);
  if (!c) return { token, user: null, privileged: true, scope: 'all', expiresAt: null };
  const admin = c.role === 'admin';
  return {
    token,
    user: typeof c.sub === 'string' ? c.sub : null,
    privileged: admin,
    scope: admin ? 'all' : 'user',
    expiresAt: typeof c.exp === 'number' ? c.exp * 1000 : null,
  };
}
