/** The client's options: defaults in one place, validated once, platform constructors resolved. */
import { openLongPoll } from './long-poll-transport.js';
import { openEventStream } from './sse-transport.js';
import type { Env, Link, Transport } from './transport.js';
import type { ClientOptions, NetworkTarget, TransportKind, VisibilityTarget } from './types.js';
import { openWebSocket } from './websocket-transport.js';

/** The defaults of every numeric option (ms unless named otherwise). */
export const clientDefaults = {
  minReconnectDelayMs: 500,
  maxReconnectDelayMs: 20_000, // 20 seconds
  connectTimeoutMs: 10_000, // 10 seconds
  upgradeIntervalMs: 60_000, // 1 minute
  longPollSeconds: 25,
  pollIntervalMs: 2_000, // 2 seconds
  tokenRefreshMarginMs: 30_000, // 30 seconds
} as const;

/** How each transport is opened. */
export const openTransport: Record<TransportKind, (link: Link, env: Env) => Transport> = {
  ws: openWebSocket,
  sse: openEventStream,
  poll: openLongPoll,
};

/** The options with their defaults, and what they resolve to on this platform. */
export interface ClientSettings {
  options: ClientOptions & { -readonly [K in keyof typeof clientDefaults]: number };
  /** The hub's HTTP base URL, without a trailing slash. */
  base: string;
  env: Env;
  /** The transports to try, in order: those asked for that this platform has. */
  kinds: TransportKind[];
  random: () => number;
  network: NetworkTarget | null;
  visibility: VisibilityTarget | null;
  share: boolean | string;
}

/** Throws a `TypeError` naming the option at fault. */
export function resolveOptions(options: ClientOptions): ClientSettings {
  const g = globalThis as Partial<typeof globalThis>;
  const o = { ...clientDefaults, ...options };
  const source = o.token;
  if (typeof o.url !== 'string' || !/^(http|ws)s?:\/\//.test(o.url)) {
    throw new TypeError('createClient: "url" must be an http(s) or ws(s) URL');
  }
  if (typeof source !== 'function' && (typeof source !== 'string' || !source)) {
    throw new TypeError('createClient: "token" must be a string or a function');
  }
  for (const [name, value] of Object.entries(o)) {
    if (name in clientDefaults && !(typeof value === 'number' && value >= 0 && value < Infinity)) {
      throw new TypeError(`createClient: "${name}" must be a non-negative number`);
    }
  }
  if (o.minReconnectDelayMs > o.maxReconnectDelayMs) {
    throw new TypeError('createClient: minReconnectDelayMs > maxReconnectDelayMs');
  }
  const base = o.url.replace(/^ws/, 'http').replace(/(\/v1\/ws)?\/*$/, '');
  const fetch = o.fetch ?? (g.fetch && ((input, init) => g.fetch!(input, init)));
  const env: Env = {
    base,
    WebSocket: o.WebSocket ?? (g.WebSocket as unknown as Env['WebSocket']),
    EventSource: o.EventSource ?? (g.EventSource as unknown as Env['EventSource']),
    fetch,
    longPollSeconds: o.longPollSeconds,
    pollIntervalMs: o.pollIntervalMs,
    timeoutMs: o.connectTimeoutMs,
  };
  const kinds = (o.transports ?? (['ws', 'sse', 'poll'] as const)).filter(
    (k) => openTransport[k] && (k === 'ws' ? env.WebSocket : k === 'sse' ? env.EventSource : fetch),
  );
  if (!kinds.length) throw new TypeError('createClient: pass WebSocket, EventSource or fetch');
  const doc = g.document;
  return {
    options: o,
    base,
    env,
    kinds,
    random: o.random ?? Math.random,
    network: o.network !== undefined ? o.network : doc ? (g as unknown as NetworkTarget) : null,
    visibility: o.visibility !== undefined ? o.visibility : (doc ?? null),
    share: o.shared ?? !!doc,
  };
}
