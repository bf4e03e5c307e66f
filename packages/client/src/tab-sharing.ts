/**
 * One connection for the tabs of an origin that use the same identity.
 *
 * - leader → tabs: `server-message`, every `event`, `subscribed` and
 *   subscription `error` of the shared connection (or a snapshot for one tab);
 *   `connection-state`; `new-leader`, "announce what you watch";
 * - tab → leader: `watching`, what the tab watches, with the seq it reached per job.
 *
 * The leader subscribes to what every tab watches, resuming each job from its
 * own seq or, for a job it did not track, from the lowest seq a tab announced,
 * so a tab that takes over misses nothing that any tab still needed. A tab that
 * finds a gap fills it from the history endpoint, like after any reconnect.
 */
import type { ServerMessage } from '@headway/protocol';
import type { ClientParts } from './client-parts.js';
import { inScope, type Watching } from './subscriptions.js';
import { joinTabGroup, type TabGroup, type TabMessage, type TabWatching } from './tab-group.js';
import { claims } from './token.js';
import type { ConnectionState } from './types.js';

export interface TabSharing {
  /** Whether this tab follows the connection of another tab. */
  following(): boolean;
  /** Join the tabs' group; true when joined now (this tab connects once it leads). */
  join(): boolean;
  /** Leave the group: give up the lead, or the place in the queue for it. */
  leave(): void;
  /** Tell the other tabs the connection's state, when this tab leads. */
  publishState(state: ConnectionState, reason: string, code?: number): void;
  /** Pass a server message on to the other tabs, when this tab leads and they need it. */
  relay(message: ServerMessage): void;
  /** Tell the leader what this tab watches, when it follows. */
  announce(): void;
  /** What the other tabs watch, when this tab leads. */
  otherTabs(): Iterable<Watching>;
  /** The lowest seq per job that another tab announced. */
  otherTabsSeqs(): ReadonlyMap<string, number>;
}

export function createTabSharing(
  parts: Pick<ClientParts, 'settings' | 'tokens' | 'connection' | 'subscriptions' | 'sequencer' | 'receive'>,
): TabSharing {
  const { share, base } = parts.settings;
  let group: TabGroup | null = null;
  let leading = false;
  /** This tab's own lock is held: it may announce itself. */
  let ready = false;
  /** What other tabs watch, by tab, when this tab leads. */
  const others = new Map<string, TabWatching>();
  let lowestSeqs = new Map<string, number>();

  const following = () => !!group && !leading;

  function announce(): void {
    if (!following() || !ready) return;
    const since: Record<string, number> = {};
    for (const t of parts.sequencer.tracks.values()) if (t.seq) since[t.id] = t.seq;
    const { jobs, scopes } = parts.subscriptions;
    group!.post({ type: 'watching', tab: group!.tab, jobs, scopes, since });
  }

  function publishState(state: ConnectionState, reason: string, code?: number): void {
    if (!leading) return;
    const { transport, user } = parts.connection;
    group!.post({ type: 'connection-state', state, reason, code, transport, user });
  }

  function onReady(): void {
    ready = true;
    announce();
  }

  function onLead(): void {
    leading = true;
    group!.post({ type: 'new-leader' });
    parts.subscriptions.invalidate();
    parts.connection.lead();
  }

  /** A tab announced what it watches: subscribe to it too, and send it what is known already. */
  function onWatching(msg: TabWatching): void {
    if (!others.has(msg.tab)) {
      group!.watch(msg.tab, function tabGone() {
        if (others.delete(msg.tab)) parts.subscriptions.changed();
      });
    }
    others.set(msg.tab, msg);
    lowestSeqs = new Map();
    for (const other of others.values()) {
      for (const [job, seq] of Object.entries(other.since))
        lowestSeqs.set(job, Math.min(lowestSeqs.get(job) ?? seq, seq));
    }
    parts.subscriptions.changed();
    // The state first (it names the user, which scopes need), then what this tab
    // already knows: the new one gets it at once and fills any gap itself.
    const { connection } = parts;
    publishState(connection.state, 'shared');
    const jobs = [...parts.sequencer.tracks.values()]
      .map((t) => t.state!)
      .filter(
        (s) =>
          s && (msg.jobs.includes(s.id) || msg.scopes.some((scope) => inScope(s, scope, connection.user))),
      );
    group!.post({
      type: 'server-message',
      to: msg.tab,
      message: { type: 'subscribed', id: '', jobs, events: [], recovered: true },
    });
  }

  function onMessage(msg: TabMessage): void {
    if (leading) {
      if (msg.type === 'watching') onWatching(msg);
    } else if (msg.type === 'server-message') {
      if (!msg.to || msg.to === group?.tab) parts.receive(msg.message);
    } else if (msg.type === 'connection-state') {
      parts.connection.mirror(msg);
    } else if (msg.type === 'new-leader') {
      announce();
    }
  }

  return {
    following,
    join() {
      if (!share || group) return false;
      const token = parts.tokens.value;
      const id = claims(token);
      const identity = typeof share === 'string' ? share : id ? [id.sub, id.role, id.jobs] : digest(token);
      group = joinTabGroup(`headway:${base}:${identity}`, {
        ready: onReady,
        lead: onLead,
        receive: onMessage,
      });
      return !!group;
    },
    leave() {
      group?.leave();
      group = null;
      leading = ready = false;
      others.clear();
      lowestSeqs = new Map();
    },
    publishState,
    relay(message) {
      // Relayed only while other tabs follow: a tab that joins later gets a snapshot when it announces itself.
      if (
        leading &&
        others.size > 0 &&
        (message.type === 'event' ||
          message.type === 'subscribed' ||
          (message.type === 'error' && message.id?.[1] === ':'))
      ) {
        group!.post({ type: 'server-message', message });
      }
    },
    announce,
    otherTabs: () => others.values(),
    otherTabsSeqs: () => lowestSeqs,
  };
}

/** A short, stable digest of a credential that is not a JWT, to name its tab group. */
function digest(text: string): string {
  let h = 2166136261;
  for (let i = 0; i < text.length; i++) h = Math.imul(h ^ text.charCodeAt(i), 16777619);
  return (h >>> 0).toString(36);
}
