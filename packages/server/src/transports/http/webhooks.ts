/**
 * `/v1/webhooks`: register back ends to be told of job events (docs/webhooks.md).
 * Changes need an API key; the lists are readable by admin tokens too, for the
 * dashboard's system view.
 */
import {
  CreateWebhookBody,
  DEFAULT_DELIVERIES_PAGE,
  DeliveriesQuery,
  ErrorCode,
  RotateSecretBody,
  WebhookDeliveryListSchema,
  WebhookIdParams,
  WebhookListSchema,
  WebhookWithSecretSchema,
} from '@headway/protocol';
import { Type } from '@sinclair/typebox';
import type { Principal } from '../../auth.js';
import { HeadwayError } from '../../errors.js';
import { isPrivileged } from '../../policy.js';
import type { WebhookRegistry } from '../../webhooks/registry.js';
import { type HttpRoutes, type RouteAccess, requireKey } from './access.js';
import { AUTH_ERRORS, BEARER, errorResponses } from './openapi.js';

function requirePrivileged(principal: Principal): void {
  if (!isPrivileged(principal)) {
    throw new HeadwayError(ErrorCode.FORBIDDEN, 'webhooks need an API key or an admin token');
  }
}

export function registerWebhookRoutes(
  routes: HttpRoutes,
  registry: WebhookRegistry,
  access: RouteAccess,
): void {
  const { principalOf } = access;

  routes.post(
    '/webhooks',
    {
      schema: {
        tags: ['webhooks'],
        operationId: 'createWebhook',
        summary: 'Register a webhook (API key).',
        description:
          'Deliveries are signed with the `secret` of the answer, shown only here. `events` defaults to how ' +
          'jobs end; `owner` and `kind` filter jobs. In production the URL must be public and `https:` ' +
          '(HW_ERR_WEBHOOK_TARGET_REFUSED otherwise, unless the hub allows it).',
        security: BEARER,
        body: CreateWebhookBody,
        response: {
          201: Type.Object(WebhookWithSecretSchema.properties, {
            description: 'The webhook, with its secret.',
          }),
          ...errorResponses(...AUTH_ERRORS, 403),
        },
      },
    },
    async function createWebhook(request, reply) {
      requireKey(principalOf(request));
      const webhook = await registry.create(request.body);
      return reply.code(201).header('location', `/v1/webhooks/${webhook.id}`).send(webhook);
    },
  );

  routes.get(
    '/webhooks',
    {
      schema: {
        tags: ['webhooks'],
        operationId: 'listWebhooks',
        summary: 'List the webhooks, without their secrets (API key or admin token).',
        security: BEARER,
        response: { 200: WebhookListSchema, ...errorResponses(...AUTH_ERRORS, 403) },
      },
    },
    async function listWebhooks(request) {
      requirePrivileged(principalOf(request));
      return { webhooks: await registry.list() };
    },
  );

  routes.get(
    '/webhooks/:id/deliveries',
    {
      schema: {
        tags: ['webhooks'],
        operationId: 'listWebhookDeliveries',
        summary:
          "A webhook's recent deliveries: status, last answer, duration, next try (API key or admin token).",
        security: BEARER,
        params: WebhookIdParams,
        querystring: DeliveriesQuery,
        response: { 200: WebhookDeliveryListSchema, ...errorResponses(...AUTH_ERRORS, 403) },
      },
    },
    async function listDeliveries(request) {
      requirePrivileged(principalOf(request));
      const limit = request.query.limit ?? DEFAULT_DELIVERIES_PAGE;
      return { deliveries: await registry.deliveries(request.params.id, limit) };
    },
  );

  routes.delete(
    '/webhooks/:id',
    {
      schema: {
        tags: ['webhooks'],
        operationId: 'deleteWebhook',
        summary: 'Delete a webhook and its pending deliveries (API key).',
        security: BEARER,
        params: WebhookIdParams,
        response: {
          204: Type.Unsafe<undefined>(Type.Null({ description: 'Deleted.' })),
          ...errorResponses(...AUTH_ERRORS, 403),
        },
      },
    },
    async function deleteWebhook(request, reply) {
      requireKey(principalOf(request));
      await registry.delete(request.params.id);
      return reply.code(204).send();
    },
  );

  routes.post(
    '/webhooks/:id/rotate-secret',
    {
      schema: {
        tags: ['webhooks'],
        operationId: 'rotateWebhookSecret',
        summary: 'Give a webhook a new secret; the old one keeps signing during the overlap (API key).',
        description:
          'Until `previousSecretExpiresAt` every delivery carries two `v1=` signatures, one per secret, so ' +
          'receivers can switch to the new secret at their own pace.',
        security: BEARER,
        params: WebhookIdParams,
        body: RotateSecretBody,
        response: {
          200: Type.Object(WebhookWithSecretSchema.properties, {
            description: 'The webhook, with its new secret.',
          }),
          ...errorResponses(...AUTH_ERRORS, 403),
        },
      },
    },
    async function rotateSecret(request) {
      requireKey(principalOf(request));
      return registry.rotateSecret(request.params.id);
    },
  );
}
