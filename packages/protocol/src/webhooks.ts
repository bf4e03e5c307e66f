/**
 * Webhooks: a back end's subscription to job events, delivered by the hub as
 * signed HTTP requests from an outbox in the store (docs/webhooks.md). These
 * are the REST bodies and answers of `/v1/webhooks`, and the shape of a
 * delivery's body.
 */
import { type Static, Type } from '@sinclair/typebox';
import { UserId } from './ids.js';
import { type EventKind, EventKindSchema, type JobEvent } from './job-event.js';
import { IsoTime, type JobState } from './job-state.js';

/** Event kinds a webhook receives when its `events` are not given: how jobs end. */
export const DEFAULT_WEBHOOK_EVENTS: readonly EventKind[] = ['completed', 'failed', 'cancelled'];
/** Header carrying the delivery id, the same on every attempt of one delivery. */
export const WEBHOOK_DELIVERY_HEADER = 'Headway-Delivery';
/** Header carrying `t=<unix seconds>,v1=<hex HMAC-SHA256 of "<t>.<body>">` (one `v1` per valid secret). */
export const WEBHOOK_SIGNATURE_HEADER = 'Headway-Signature';
/** Deliveries per page of `GET /v1/webhooks/:id/deliveries` when `limit` is not given. */
export const DEFAULT_DELIVERIES_PAGE = 50;
/** Largest `limit` of `GET /v1/webhooks/:id/deliveries`. */
export const MAX_DELIVERIES_PAGE = 500;

/** Webhook ids, as the hub generates them (`wh_` and 24 hex digits). */
export const WebhookId = Type.String({ pattern: '^wh_[0-9a-f]{24}$' });

/** `POST /v1/webhooks`. */
export const CreateWebhookBody = Type.Object(
  {
    url: Type.String({
      minLength: 1,
      maxLength: 2048,
      description: 'Where deliveries are POSTed: `https:` (and `http:` where the hub allows it).',
    }),
    events: Type.Optional(
      Type.Array(EventKindSchema, {
        minItems: 1,
        maxItems: 32,
        uniqueItems: true,
        description: 'Event kinds to deliver; default `["completed", "failed", "cancelled"]`.',
      }),
    ),
    owner: Type.Optional(UserId),
    kind: Type.Optional(
      Type.String({ minLength: 1, maxLength: 128, description: 'Only jobs of this kind.' }),
    ),
  },
  { additionalProperties: false },
);
export type CreateWebhookInput = Static<typeof CreateWebhookBody>;

/** `POST /v1/webhooks/:id/rotate-secret`: no fields; the body may be absent. */
export const RotateSecretBody = Type.Object({}, { additionalProperties: false });

export const WebhookIdParams = Type.Object({ id: WebhookId });

export const DeliveriesQuery = Type.Object(
  {
    limit: Type.Optional(
      Type.Integer({
        minimum: 1,
        maximum: MAX_DELIVERIES_PAGE,
        description: `Most deliveries to return; default ${DEFAULT_DELIVERIES_PAGE}.`,
      }),
    ),
  },
  { additionalProperties: false },
);

const webhookFields = {
  id: WebhookId,
  url: Type.String(),
  events: Type.Array(EventKindSchema),
  owner: Type.Union([Type.String(), Type.Null()], { description: 'Only jobs of this owner; null: all.' }),
  kind: Type.Union([Type.String(), Type.Null()], { description: 'Only jobs of this kind; null: all.' }),
  createdAt: IsoTime('When the webhook was created'),
};

export const WebhookSchema = Type.Object(
  {
    ...webhookFields,
    previousSecretExpiresAt: Type.Union([IsoTime('End of the overlap'), Type.Null()], {
      description: 'While a secret rotation overlaps: when the previous secret stops signing.',
    }),
  },
  { description: 'A webhook; its secret is shown only when created or rotated.' },
);
export type Webhook = Static<typeof WebhookSchema>;

export const WebhookWithSecretSchema = Type.Object(
  {
    ...WebhookSchema.properties,
    secret: Type.String({ description: 'The signing secret. Shown only in this answer: keep it.' }),
  },
  { description: 'The webhook with its signing secret.' },
);
export type WebhookWithSecret = Static<typeof WebhookWithSecretSchema>;

export const WebhookListSchema = Type.Object({ webhooks: Type.Array(WebhookSchema) });

export const DeliveryStatusSchema = Type.Union([
  Type.Literal('pending'),
  Type.Literal('succeeded'),
  Type.Literal('failed'),
]);
export type DeliveryStatus = Static<typeof DeliveryStatusSchema>;

export const WebhookDeliverySchema = Type.Object({
  id: Type.String({ description: 'The `Headway-Delivery` id.' }),
  job: Type.String(),
  seq: Type.Integer({ minimum: 1 }),
  type: Type.String({ description: '`job.<event kind>`.' }),
  status: DeliveryStatusSchema,
  attempts: Type.Integer({ minimum: 0 }),
  responseCode: Type.Union([Type.Integer(), Type.Null()], {
    description: 'HTTP status of the last attempt; null when it got no answer (or none was made).',
  }),
  error: Type.Union([Type.String(), Type.Null()], { description: 'Why the last attempt failed.' }),
  durationMs: Type.Union([Type.Integer({ minimum: 0 }), Type.Null()], {
    description: 'Duration of the last attempt, ms.',
  }),
  lastAttemptAt: Type.Union([IsoTime('Time of the last attempt'), Type.Null()]),
  nextAttemptAt: Type.Union([IsoTime('Next attempt'), Type.Null()], {
    description: 'When a pending delivery is tried next.',
  }),
  createdAt: IsoTime('When the event was stored (the delivery with it)'),
});
export type WebhookDelivery = Static<typeof WebhookDeliverySchema>;

export const WebhookDeliveryListSchema = Type.Object({
  deliveries: Type.Array(WebhookDeliverySchema, { description: 'Most recently changed first.' }),
});

/** The JSON body of a delivery. */
export interface WebhookPayload {
  /** The delivery id, as in `Headway-Delivery`. */
  id: string;
  /** `job.<event kind>`, e.g. `job.completed`. */
  type: string;
  /** When the event was stored, ISO-8601. */
  at: string;
  /** The job's state as stored with the event. */
  job: JobState;
  event: JobEvent;
}
