import type { ServerMessage } from '@headway/protocol';
import type { Connection } from './connection.js';
import type { ControlRequests } from './control-requests.js';
import type { Emitter } from './emitter.js';
import type { HeadwayClientError } from './errors.js';
import type { JobSequencer } from './job-sequencer.js';
import type { ClientSettings } from './options.js';
import type { Rest } from './rest.js';
import type { Subscriptions } from './subscriptions.js';
import type { TabSharing } from './tab-sharing.js';
import type { TokenKeeper } from './token.js';
import type { ClientEvents } from './types.js';

/**
 * The parts of one client, made in the order below by their own files. They
 * refer to each other in a circle, so each reaches the others through this
 * object, at call time (only the connection, made last, keeps references from
 * the start); each factory names, with `Pick`, the parts it uses.
 */
export interface ClientParts {
  settings: ClientSettings;
  events: Emitter<ClientEvents>;
  tokens: TokenKeeper;
  rest: Rest;
  tabs: TabSharing;
  subscriptions: Subscriptions;
  sequencer: JobSequencer;
  requests: ControlRequests;
  connection: Connection;
  /** Handle a message of the hub, from this tab's transport or relayed by the leading tab. */
  receive(message: ServerMessage): void;
  /** Report a failure that the client handles on its own (the `error` event). */
  report(error: HeadwayClientError): void;
}
