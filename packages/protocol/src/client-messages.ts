/**
 * Native WebSocket protocol, client → server: one JSON text frame per message,
 * told apart by `type`.
 */
import { type Static, type TSchema, Type } from '@sinclair/typebox';
import { Reason } from './event-input.js';
import { JobId } from './ids.js';

const SubId = Type.String({ minLength: 1, maxLength: 64, description: 'Chosen by the client; echoed back.' });
const Seq = Type.Integer({ minimum: 0 });

export const AuthMessageSchema = Type.Object(
  { type: Type.Literal('auth'), token: Type.String({ minLength: 1, maxLength: 8192 }) },
  { additionalProperties: false },
);
export const SubscribeJobMessageSchema = Type.Object(
  {
    type: Type.Literal('subscribe'),
    id: SubId,
    job: JobId,
    since: Type.Optional(Seq),
  },
  { additionalProperties: false },
);
export const SubscribeScopeMessageSchema = Type.Object(
  {
    type: Type.Literal('subscribe'),
    id: SubId,
    scope: Type.Union([Type.Literal('user'), Type.Literal('all')]),
    since: Type.Optional(Type.Record(Type.String(), Seq, { description: 'Last seq seen per job.' })),
  },
  { additionalProperties: false },
);
export const UnsubscribeMessageSchema = Type.Object(
  { type: Type.Literal('unsubscribe'), id: SubId },
  { additionalProperties: false },
);
export const GetStateMessageSchema = Type.Object(
  { type: Type.Literal('get_state'), id: SubId, job: JobId },
  { additionalProperties: false },
);
export const PingMessageSchema = Type.Object(
  { type: Type.Literal('ping'), ts: Type.Optional(Type.Number()) },
  { additionalProperties: false },
);
function controlMessage<K extends string>(type: K) {
  return Type.Object(
    { type: Type.Literal(type), id: SubId, job: JobId, reason: Type.Optional(Reason) },
    { additionalProperties: false },
  );
}

/** Each client message's schema by `type`. */
export const clientMessageSchemas = {
  auth: AuthMessageSchema,
  subscribe: Type.Union([SubscribeJobMessageSchema, SubscribeScopeMessageSchema]),
  unsubscribe: UnsubscribeMessageSchema,
  get_state: GetStateMessageSchema,
  ping: PingMessageSchema,
  cancel: controlMessage('cancel'),
  pause: controlMessage('pause'),
  resume: controlMessage('resume'),
} satisfies Record<string, TSchema>;
export type ClientMessageType = keyof typeof clientMessageSchemas;

export type AuthMessage = Static<typeof AuthMessageSchema>;
/** Subscribe to one job; `since` is the last seq seen, and the server replays what came after it. */
export type SubscribeJobMessage = Static<typeof SubscribeJobMessageSchema>;
/** Subscribe to the token's user's jobs or to all jobs. */
export type SubscribeScopeMessage = Static<typeof SubscribeScopeMessageSchema>;
export type UnsubscribeMessage = Static<typeof UnsubscribeMessageSchema>;
export type GetStateMessage = Static<typeof GetStateMessageSchema>;
export type PingMessage = Static<typeof PingMessageSchema>;
export type ControlMessage = Static<(typeof clientMessageSchemas)['cancel' | 'pause' | 'resume']>;
export type ClientMessage = {
  [K in ClientMessageType]: Static<(typeof clientMessageSchemas)[K]>;
}[ClientMessageType];
