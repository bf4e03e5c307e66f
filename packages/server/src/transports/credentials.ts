/**
 * Reading a credential where a request carries it: `Authorization: Bearer`, and
 * the session cookie (a browser token in an HttpOnly cookie; see
 * `dialects/session.ts` for what keeps other sites from riding it).
 */

/** Name of the cookie that carries the browser token. */
export const SESSION_COOKIE = 'headway_token';

/** The raw value of the first cookie called `name` in a `Cookie` header (trimmed), or null. */
export function cookieValue(cookieHeader: string | undefined, name: string): string | null {
  if (!cookieHeader) return null;
  for (const part of cookieHeader.split(';')) {
    const eq = part.indexOf('=');
    if (eq < 0 || part.slice(0, eq).trim() !== name) continue;
    return part.slice(eq + 1).trim();
  }
  return null;
}

/** The token of the session cookie in a `Cookie` header, or null. */
export function sessionToken(cookieHeader: string | undefined): string | null {
  let value = cookieValue(cookieHeader, SESSION_COOKIE);
  if (value === null) return null;
  if (value.startsWith('"') && value.endsWith('"') && value.length >= 2) value = value.slice(1, -1);
  return value === '' ? null : value;
}

/** The credential of an `Authorization: Bearer <credential>` header, or null. */
export function bearerToken(header: string | undefined): string | null {
  if (header === undefined) return null;
  return /^Bearer[ \t]+(\S+)[ \t]*$/i.exec(header)?.[1] ?? null;
}
