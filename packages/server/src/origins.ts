/**
 * One allow-list for browser origins, used by CORS on the REST API and by the
 * Origin check on WebSocket upgrades.
 */
export class OriginPolicy {
  private readonly allowed: ReadonlySet<string>;

  constructor(
    allowed: readonly string[],
    /** In development an empty list allows any localhost origin. */
    private readonly development: boolean,
  ) {
    this.allowed = new Set(allowed.map((o) => o.replace(/\/+$/, '').toLowerCase()));
  }

  /**
   * Whether a request with this Origin header may proceed. `host` is the request's Host header: a page served by
   * the hub itself is always allowed. Requests without an
   * Origin (workers, curl, server-side clients) are not browser requests and pass.
   */
  allows(origin: string | undefined, host?: string): boolean {
    if (origin === undefined) return true;
    const o = origin.toLowerCase();
    // Same origin: the page was served by this hub (the dashboard).
    if (host !== undefined && sameHost(o, host.toLowerCase())) return true;
    if (this.allowed.has('*') || this.allowed.has(o)) return true;
    if (this.development && this.allowed.size === 0) return isLocalhost(o);
    return false;
  }
}

function isLocalhost(origin: string): boolean {
  try {
    const { hostname } = new URL(origin);
    return hostname === 'localhost' || hostname === '127.0.0.1' || hostname === '[::1]';
  } catch {
    return false;
  }
}

function sameHost(origin: string, host: string): boolean {
  try {
    return new URL(origin).host === host;
  } catch {
    return false;
  }
}
