/** Authenticated calls to the hub's REST API (`/v1/…`). */
import type { JobEvent } from '@headway/protocol';
import type { ClientParts } from './client-parts.js';
import { ClientErrorCode, HeadwayClientError } from './errors.js';

export interface HistoryPage {
  events: JobEvent[];
  /** The seq to read the next page from, when there is one. */
  next?: number;
}

export interface Rest {
  /** Rejects with a `HeadwayClientError` carrying the hub's code, or `HW_ERR_CLIENT_NETWORK`. */
  api<T>(path: string, init?: { method?: string; body?: unknown }): Promise<T>;
  /** A page of a job's event log after `since`. */
  history(id: string, options?: { since?: number; limit?: number }): Promise<HistoryPage>;
}

export function createRest(parts: Pick<ClientParts, 'settings' | 'tokens'>): Rest {
  const { base, env } = parts.settings;
  /** `retried`: the token was refused once already and replaced. */
  async function api<T>(
    path: string,
    init: { method?: string; body?: unknown } = {},
    retried = false,
  ): Promise<T> {
    const headers: Record<string, string> = { authorization: `Bearer ${await parts.tokens.get()}` };
    if (init.body !== undefined) headers['content-type'] = 'application/json';
    let res: Response;
    let body: { error?: { code: HeadwayClientError['code']; message: string } } | null;
    try {
      res = await env.fetch!(base + path, {
        method: init.method ?? 'GET',
        headers,
        body: init.body === undefined ? undefined : JSON.stringify(init.body),
      });
      body = await res.json();
    } catch {
      throw new HeadwayClientError(ClientErrorCode.NETWORK, `no answer from ${base}`);
    }
    if (res.ok) return body as T;
    if (res.status === 401 && !retried && parts.tokens.renewable) {
      parts.tokens.refuse();
      return api(path, init, true);
    }
    throw new HeadwayClientError(
      body?.error?.code ?? ClientErrorCode.NETWORK,
      body?.error?.message ?? `HTTP ${res.status}`,
      res.status,
    );
  }

  return {
    api,
    history: (id, options = {}) =>
      api(
        `/v1/jobs/${encodeURIComponent(id)}/events?since=${options.since ?? 0}&limit=${options.limit ?? 100}`,
      ),
  };
}
