/**
 * A group of the tabs of one origin that share a connection, and its leader.
 *
 * The leader is the tab holding the Web Lock named after the group; the others
 * queue for it, so when the leader's tab closes (or its client is closed) the
 * browser hands the lock to the next tab, which connects and takes over. Each
 * tab also holds a lock of its own for its lifetime: the leader requests it to
 * learn, when it is granted, that the tab is gone.
 *
 * Messages (`TabMessage`) go over a BroadcastChannel of the same name; what
 * they mean is up to tab-sharing.ts.
 */
import type { ServerMessage } from '@headway/protocol';
import type { ConnectionState, Scope, TransportKind } from './types.js';

/** The connection's state, as the leader tells the other tabs. */
export interface SharedConnectionState {
  type: 'connection-state';
  state: ConnectionState;
  reason: string;
  code?: number;
  transport: TransportKind | null;
  user: string | null;
}

/** What a tab watches, with the seq it reached per job. */
export interface TabWatching {
  type: 'watching';
  tab: string;
  jobs: string[];
  scopes: Scope[];
  since: Record<string, number>;
}

export type TabMessage =
  /** leader → tabs: a server message of the shared connection, or a snapshot for the tab `to` alone. */
  | { type: 'server-message'; message: ServerMessage; to?: string }
  /** leader → tabs. */
  | SharedConnectionState
  /** leader → tabs: a new leader took over: announce what you watch. */
  | { type: 'new-leader' }
  /** tab → leader. */
  | TabWatching;

export interface TabGroup {
  /** This tab's id. */
  tab: string;
  post(message: TabMessage): void;
  /** Call `gone` once the tab `other` has closed (or its client left). */
  watch(other: string, gone: () => void): void;
  /** Leave the group: give up the lead (or the place in the queue for it). */
  leave(): void;
}

type Locks = {
  request(
    name: string,
    options: { signal?: AbortSignal },
    callback: () => Promise<void> | void,
  ): Promise<unknown>;
};

/**
 * Join the group `name`; null when the platform lacks Web Locks or BroadcastChannel.
 * `ready` runs once this tab's own lock is held (it may then announce itself);
 * `lead` runs when this tab becomes the leader.
 */
export function joinTabGroup(
  name: string,
  hooks: { ready(): void; lead(): void; receive(message: TabMessage): void },
): TabGroup | null {
  const locks = (globalThis.navigator as { locks?: Locks } | undefined)?.locks;
  if (!locks || typeof BroadcastChannel === 'undefined') return null;
  const tab = Math.random().toString(36).slice(2);
  const channel = new BroadcastChannel(name);
  const quit = new AbortController();
  let release!: () => void;
  const held = new Promise<void>((resolve) => (release = resolve));
  const ignore = () => {};
  channel.onmessage = (e) => hooks.receive(e.data);
  locks
    .request(`${name}/${tab}`, {}, () => {
      hooks.ready();
      return held;
    })
    .catch(ignore);
  locks
    .request(name, { signal: quit.signal }, () => {
      hooks.lead();
      return held;
    })
    // Aborted when the tab leaves before it led.
    .catch(ignore);
  return {
    tab,
    post: (message) => channel.postMessage(message),
    watch: (other, gone) => {
      locks.request(`${name}/${other}`, { signal: quit.signal }, gone).catch(ignore);
    },
    leave() {
      quit.abort();
      release();
      channel.close();
    },
  };
}
