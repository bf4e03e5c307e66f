/**
 * Native WebSocket protocol, server → client. The hub encodes these once per
 * event and writes the same bytes to every subscriber; the schemas document
 * them and type the code that builds and reads them.
 */
import { type Static, Type } from '@sinclair/typebox';
import { JobEventSchema } from './job-event.js';
import { JobStateSchema } from './job-state.js';
import { ErrorDetailSchema } from './rest-responses.js';

/** Version of the native protocol, sent in `welcome`. */
export const PROTOCOL_VERSION = 1;

export const LimitsSchema = Type.Object({
  maxMessageBytes: Type.Integer({ description: 'Largest inbound frame, bytes.' }),
  maxSubscriptions: Type.Integer({ description: 'Subscriptions per connection.' }),
  messagesPerSecond: Type.Number({ description: 'Client messages per second.' }),
  replayLimit: Type.Integer({
    description: 'Most events replayed on resume; beyond it `recovered` is false.',
  }),
});
export type Limits = Static<typeof LimitsSchema>;

export const WelcomeMessageSchema = Type.Object({
  type: Type.Literal('welcome'),
  version: Type.Integer(),
  heartbeatMs: Type.Integer(),
  limits: LimitsSchema,
  user: Type.String({ description: 'The authenticated user.' }),
});
export type WelcomeMessage = Static<typeof WelcomeMessageSchema>;

export const SubscribedMessageSchema = Type.Object({
  type: Type.Literal('subscribed'),
  id: Type.String(),
  jobs: Type.Array(JobStateSchema, {
    description: 'Current state of every job the subscription covers (for a scope: active and recent jobs).',
  }),
  events: Type.Array(JobEventSchema, { description: 'Events missed since `since`, in seq order per job.' }),
  recovered: Type.Boolean({
    description:
      'True when every missed event was replayed; false when the client must take `jobs` as the truth.',
  }),
});
export type SubscribedMessage = Static<typeof SubscribedMessageSchema>;

/** One event with the job's full state after it. */
export const EventMessageSchema = Type.Composite([
  Type.Object({ type: Type.Literal('event') }),
  JobEventSchema,
  Type.Object({ state: JobStateSchema }),
]);
export type EventMessage = Static<typeof EventMessageSchema>;

export const StateMessageSchema = Type.Object({
  type: Type.Literal('state'),
  id: Type.String(),
  job: JobStateSchema,
});
export type StateMessage = Static<typeof StateMessageSchema>;

export const AckMessageSchema = Type.Object({
  type: Type.Literal('ack'),
  id: Type.String(),
  /** Job state after a control request. */
  job: Type.Optional(JobStateSchema),
});
export type AckMessage = Static<typeof AckMessageSchema>;

export const ErrorMessageSchema = Type.Composite([
  Type.Object({ type: Type.Literal('error'), id: Type.Optional(Type.String()) }),
  ErrorDetailSchema,
]);
export type ErrorMessage = Static<typeof ErrorMessageSchema>;

export const PongMessageSchema = Type.Object({
  type: Type.Literal('pong'),
  ts: Type.Optional(Type.Number()),
});
export type PongMessage = Static<typeof PongMessageSchema>;

export const ServerMessageSchema = Type.Union([
  WelcomeMessageSchema,
  SubscribedMessageSchema,
  EventMessageSchema,
  StateMessageSchema,
  AckMessageSchema,
  ErrorMessageSchema,
  PongMessageSchema,
]);
export type ServerMessage = Static<typeof ServerMessageSchema>;
