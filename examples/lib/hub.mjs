/**
 * What the examples' back ends and workers share: where the hub is, its API
 * key, and plain `fetch` calls to its REST API (no SDK, to show the wire).
 *
 * HEADWAY_URL defaults to the hub of `npm start`; HEADWAY_API_KEY defaults to
 * the development key that `npm start` keeps in `.headway/secrets.json`.
 */
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';

export const HUB_URL = (process.env.HEADWAY_URL ?? 'http://127.0.0.1:7070').replace(/\/+$/, '');
export const HUB_WS = HUB_URL.replace(/^http/, 'ws');

let key = null;
function apiKey() {
  if (key !== null) return key;
  if (process.env.HEADWAY_API_KEY) return (key = process.env.HEADWAY_API_KEY);
  const file = fileURLToPath(new URL('../../.headway/secrets.json', import.meta.url));
  try {
    key = JSON.parse(readFileSync(file, 'utf8')).apiKey;
  } catch {
    throw new Error('set HEADWAY_API_KEY to the API key the hub printed at start-up');
  }
  return key;
}

/** One REST call with the API key; resolves with the parsed answer, rejects with the error code. */
export async function hub(method, path, body) {
  const headers = { authorization: `Bearer ${apiKey()}` };
  if (body !== undefined) headers['content-type'] = 'application/json';
  const res = await fetch(`${HUB_URL}${path}`, {
    method,
    headers,
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  const text = await res.text();
  const data = text === '' ? null : JSON.parse(text);
  if (!res.ok) throw new Error(`${method} ${path}: ${res.status} ${data?.error?.code ?? text}`);
  return data;
}

/** Create a job as the application's back end does; the hub picks a random UUID when `id` is absent. */
export const createJob = (job) => hub('POST', '/v1/jobs', job);

/** Report events; the answer's `control` tells a worker about cancel and pause requests. */
export const report = (jobId, ...events) =>
  hub('POST', `/v1/jobs/${encodeURIComponent(jobId)}/events`, { events });

/** A browser token for a user, valid for `ttl` seconds. */
export const mintToken = async (user, ttl = 3600) => (await hub('POST', '/v1/tokens', { user, ttl })).token;

export const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

/** True when the module at `url` is the script node was started with. */
export const isMain = (url) => process.argv[1] !== undefined && fileURLToPath(url) === process.argv[1];
