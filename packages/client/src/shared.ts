/**
 * Tabs of one origin that use the same identity share one connection.
 *
 * The leader is the tab holding the Web Lock named after the group; the others
 * queue for it, so when the leader's tab closes (or its client is closed) the
 * browser hands the lock to the next tab, which connects and takes over. Each
 * tab also holds a lock of its own for its lifetime: the leader requests it to
 * learn, when it is granted, that the tab is gone.
 *
 * Messages go over a BroadcastChannel of the same name:
 *
 * - leader → tabs: `m` a server message (every `event`, `subscribed` and
 *   subscription `error` of the shared connection, or a snapshot for one tab),
 *   `s` the connection's state, `l` "a new leader: announce what you watch";
 * - tab → leader: `w` what the tab watches, with the seq it reached per job.
 *
 * The leader subscribes to what every tab watches, resuming each job from its
 * own seq or, for a job it did not track, from the lowest seq a tab announced,
 * so a tab that takes over misses nothing that any tab still needed. A tab that
 * finds a gap fills it from the history endpoint, like after any reconnect.
 */
import type { ServerMessage } from '@headway/protocol';
import type { ConnectionState, Scope, TransportKind } from './types.js';

export type SharedMessage =
  | { k: 'm'; m: ServerMessage; to?: string }
  | { k: 's'; s: ConnectionState; r: string; c?: number; t: TransportKind | null; u: string | null }
  | { k: 'l' }
  | { k: 'w'; tab: string; jobs: string[]; scopes: Scope[]; since: Record<string, number> };

export interface Tabs {
  /** This tab's id. */
  tab: string;
  post(message: SharedMessage): void;
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
export function joinTabs(
  name: string,
  hooks: { ready(): void; lead(): void; receive(message: SharedMessage): void },
): Tabs | null {
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
