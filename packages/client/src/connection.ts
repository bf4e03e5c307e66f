/**
 * The connection state machine:
 *
 * ```
 * idle ──connect()──▶ connecting ──▶ connected ◀──▶ reconnecting (backoff) ──▶ …
 *                                       └──── close() / a "stop" close code ──▶ closed
 * ```
 *
 * Every change goes through `setState`, which emits `state` with
 * `{oldState, newState, reason, code?, delayMs?}`. Transports are tried in
 * order until one connects; a fallback one is left for WebSocket again from
 * time to time; a token refresh moves the connection over to a new transport.
 */
import type { ClientMessage } from '@headway/protocol';
import { backoffDelay, closeAction } from '@headway/protocol/codes';
import type { ClientParts } from './client-parts.js';
import * as closeCodes from './close-codes.js';
import { ClientErrorCode, HeadwayClientError } from './errors.js';
import { openTransport } from './options.js';
import type { SharedConnectionState } from './tab-group.js';
import { ABNORMAL_CLOSURE, type Link, type Transport } from './transport.js';
import type { ConnectionState, TransportKind } from './types.js';

export interface Connection {
  readonly state: ConnectionState;
  /** The transport in use (the leader tab's, when following); null when none. */
  readonly transport: TransportKind | null;
  /** The authenticated user; null before the first connection. */
  readonly user: string | null;
  connect(): void;
  close(): void;
  /** Send on the open transport, when connected; false when it cannot. */
  send(message: ClientMessage): boolean;
  /** Bring the open transport's subscriptions in line with what is wanted. */
  sync(): void;
  /** This tab now leads its group: connect on its behalf. */
  lead(): void;
  /** Take on the state of the leading tab's connection. */
  mirror(shared: SharedConnectionState): void;
  /** A new token arrived ahead of `exp`: move the connection over to it. */
  renew(): void;
}

export function createConnection(
  parts: Pick<
    ClientParts,
    'settings' | 'events' | 'tokens' | 'tabs' | 'subscriptions' | 'sequencer' | 'requests' | 'receive'
  >,
): Connection {
  const { settings, events, tokens, tabs, subscriptions, sequencer } = parts;
  const { options, kinds, env, network, visibility } = settings;
  const backoff = { initialDelayMs: options.minReconnectDelayMs, maxDelayMs: options.maxReconnectDelayMs };
  let state: ConnectionState = 'idle';
  let current: Transport | null = null;
  /** The leading tab's transport, while following. */
  let mirrored: TransportKind | null = null;
  let user: string | null = null;
  /** Failed attempts since the last success. */
  let attempts = 0;
  /** The transport that connected last: reconnects start there. */
  let sticky = 0;
  /** Bumped whenever pending connection attempts become obsolete. */
  let generation = 0;
  let awaitingPong = false;
  let retryTimer: ReturnType<typeof setTimeout> | undefined;
  let upgradeTimer: ReturnType<typeof setTimeout> | undefined;
  let heartbeatTimer: ReturnType<typeof setInterval> | undefined;

  function setState(next: ConnectionState, reason: string, code?: number, delayMs?: number): void {
    tabs.publishState(next, reason, code);
    if (next === state) return;
    const oldState = state;
    state = next;
    events.emit('state', { oldState, newState: next, reason, code, delayMs });
  }

  const offline = () => (network?.onLine ?? globalThis.navigator?.onLine) === false;

  function connect(): void {
    if (state !== 'idle' && state !== 'closed') return;
    setState('connecting', 'connect');
    network?.addEventListener('online', onOnline);
    network?.addEventListener('offline', onOffline);
    visibility?.addEventListener('visibilitychange', onVisible);
    cycle(0);
  }

  /** Get a token, then try the transports from `from` on. */
  async function cycle(from: number): Promise<void> {
    const mine = ++generation;
    clearTimeout(retryTimer);
    if (tabs.following()) return;
    if (offline()) {
      setState('reconnecting', 'offline');
      return;
    }
    tokens.refuseIfExpired();
    try {
      await tokens.get();
    } catch {
      if (mine === generation) retry('token-error');
      return;
    }
    if (mine !== generation || state === 'closed') return;
    // Joined a group of tabs just now: connect once this tab leads it.
    if (tabs.join()) return;
    attempt(from, false);
  }

  /**
   * Open the transport `kinds[i]`. A candidate (an upgrade or a token refresh)
   * replaces the open transport once it is up, and leaves it alone if it fails.
   */
  function attempt(i: number, candidate: boolean): void {
    const mine = generation;
    const kind = kinds[i]!;
    let opened = false;
    let t: Transport;
    const timer = setTimeout(() => {
      t.close();
      link.closed(ABNORMAL_CLOSURE, 'connect timeout');
    }, options.connectTimeoutMs);
    const link: Link = {
      wanted: subscriptions.wanted,
      since: subscriptions.since,
      seen: sequencer.seen,
      token: () => tokens.value,
      user: () => user,
      opened(info) {
        clearTimeout(timer);
        if (opened || mine !== generation || state === 'closed') return t.close();
        opened = true;
        const previous = current;
        current = t;
        drop(previous);
        user = info.user;
        attempts = 0;
        sticky = i;
        setState('connected', 'connected');
        if (previous?.kind !== kind)
          events.emit('transport', { transport: kind, previous: previous?.kind ?? null });
        t.sync();
        heartbeat(info.heartbeatMs);
        upgradeLater();
      },
      message(m) {
        if (t !== current) return;
        if (m.type === 'pong') awaitingPong = false;
        else parts.receive(m);
      },
      closed(code) {
        clearTimeout(timer);
        if (t === current) return lost(code);
        if (opened || mine !== generation || state === 'closed') return;
        if (candidate) return i + 1 < sticky ? attempt(i + 1, true) : upgradeLater();
        const action = closeAction(code);
        if (action === 'stop') stop(code);
        else if (action === 'refresh-token') refreshOrStop(code);
        // Refused before it opened with a standard code, not one of the hub's (a proxy
        // without Upgrade, a firewall): the next transport.
        else if (code < closeCodes.RECONNECT && i + 1 < kinds.length) attempt(i + 1, false);
        else {
          sticky = 0;
          retry('connect-failed', code);
        }
      },
    };
    t = openTransport[kind](link, env);
  }

  /** Close `t` (the transport just replaced or lost), sending its control requests again over REST. */
  function drop(t: Transport | null): void {
    t?.close();
    if (t?.kind === 'ws') parts.requests.resendOverRest();
  }

  /** The open transport closed: reconnect with backoff, refresh the token first, or stop. */
  function lost(code: number): void {
    const previous = current;
    current = null;
    if (previous?.kind === 'ws') parts.requests.resendOverRest();
    const action = closeAction(code);
    if (action === 'stop') stop(code);
    else if (action === 'refresh-token') refreshOrStop(code);
    else retry(code === closeCodes.HEARTBEAT_TIMEOUT ? 'heartbeat-timeout' : 'lost', code);
  }

  /** The token was refused: a token function gives another one, a fixed token never becomes valid. */
  function refreshOrStop(code: number): void {
    if (!tokens.renewable) {
      stop(code);
    } else {
      tokens.refuse();
      retry('lost', code);
    }
  }

  function retry(reason: string, code?: number): void {
    stopTimers();
    const delay = backoffDelay(++attempts, backoff, undefined, settings.random);
    setState('reconnecting', reason, code, delay);
    retryTimer = setTimeout(() => cycle(sticky), delay);
  }

  function stop(code: number): void {
    shutdown();
    setState('closed', 'stop', code);
    const error = new HeadwayClientError(
      ClientErrorCode.STOPPED,
      `the hub closed the connection with code ${code}`,
    );
    events.emit('error', { error });
  }

  function stopTimers(): void {
    clearTimeout(retryTimer);
    clearTimeout(upgradeTimer);
    clearInterval(heartbeatTimer);
  }

  /** Drop the open transport and whatever attempt is under way. */
  function closeTransport(): void {
    generation++;
    stopTimers();
    const previous = current;
    current = null;
    drop(previous);
  }

  function shutdown(): void {
    closeTransport();
    tokens.stop();
    tabs.leave();
    network?.removeEventListener('online', onOnline);
    network?.removeEventListener('offline', onOffline);
    visibility?.removeEventListener('visibilitychange', onVisible);
  }

  /** While on a fallback transport, try WebSocket again from time to time. */
  function upgradeLater(): void {
    clearTimeout(upgradeTimer);
    if (sticky > 0 && state === 'connected')
      upgradeTimer = setTimeout(attempt, options.upgradeIntervalMs, 0, true);
  }

  /**
   * The hub pings at the WebSocket level, which browsers do not expose: ping at
   * the protocol level instead, and take a ping unanswered by the next one as a
   * dead connection.
   */
  function heartbeat(ms: number): void {
    clearInterval(heartbeatTimer);
    awaitingPong = false;
    if (!ms || current?.kind !== 'ws') return;
    heartbeatTimer = setInterval(() => {
      const t = current!;
      if (!awaitingPong) {
        awaitingPong = true;
        t.send({ type: 'ping', ts: Date.now() });
        return;
      }
      t.close();
      lost(closeCodes.HEARTBEAT_TIMEOUT);
    }, ms);
  }

  function onOffline(): void {
    if (state === 'closed' || state === 'idle' || tabs.following()) return;
    closeTransport();
    setState('reconnecting', 'offline');
  }

  function onOnline(): void {
    if (state === 'reconnecting' && !tabs.following()) {
      attempts = 0;
      cycle(sticky);
    }
  }

  function onVisible(): void {
    if (visibility?.visibilityState === 'visible' && state === 'reconnecting' && !offline()) cycle(sticky);
  }

  return {
    get state() {
      return state;
    },
    get transport() {
      return tabs.following() ? mirrored : (current?.kind ?? null);
    },
    get user() {
      return user;
    },
    connect,
    close() {
      if (state === 'closed') return;
      shutdown();
      setState('closed', 'close');
    },
    send: (m) => state === 'connected' && !!current?.send(m),
    sync: () => current?.sync(),
    lead() {
      mirrored = null;
      attempt(sticky, false);
    },
    mirror(shared) {
      user = shared.user;
      mirrored = shared.transport;
      setState(shared.state, shared.reason, shared.code);
    },
    renew() {
      if (state === 'connected' && current && !tabs.following()) attempt(sticky, true);
    },
  };
}
