/**
 * The REST API: the worker and back-end endpoints (create jobs, report events,
 * mint browser tokens), reads and control for browsers, long-poll, health,
 * readiness, metrics and the OpenAPI document generated from the route schemas.
 *
 * Every schema comes from `@headway/protocol`, and the route handlers are typed
 * by them (`@fastify/type-provider-typebox`). Request bodies are validated with
 * the same TypeBox checker as WebSocket messages, so one event is accepted or
 * refused alike on every transport. Every error leaves through one handler as
 * `{error: {code, message}}` with the status of its `HW_ERR_*` code.
 */
import cors from '@fastify/cors';
import type { TypeBoxTypeProvider } from '@fastify/type-provider-typebox';
import { ErrorCode } from '@headway/protocol';
import type { FastifyError, FastifyInstance, FastifyReply } from 'fastify';
import type { ServerContext } from '../../context.js';
import { HeadwayError } from '../../errors.js';
import { createAccess } from './access.js';
import { registerControlRoutes } from './control.js';
import { registerEventRoutes } from './events.js';
import { registerJobRoutes } from './jobs.js';
import { addComponentSchemas, registerOpenApi } from './openapi.js';
import { registerOperationRoutes } from './operations.js';
import { registerTokenRoutes } from './tokens.js';
import { classify, typeboxValidator } from './validation.js';

/**
 * Register the REST API, CORS, the error handler and the OpenAPI document on
 * `app`. Call before `listen`.
 */
export async function registerHttp(app: FastifyInstance, ctx: ServerContext): Promise<void> {
  const { hub, auth, metrics } = ctx;

  function sendError(reply: FastifyReply, err: HeadwayError): FastifyReply {
    metrics.clientErrors.inc({ code: err.code });
    if (err.status === 503 && err.retryAfter !== undefined)
      reply.header('retry-after', String(err.retryAfter));
    if (err.status === 401) {
      reply.header(
        'www-authenticate',
        err.code === ErrorCode.TOKEN_EXPIRED ? 'Bearer error="invalid_token"' : 'Bearer realm="headway"',
      );
    }
    return reply.code(err.status).send({ error: { code: err.code, message: err.message } });
  }

  // Set before any plugin adds a route: a route keeps the error handler in force when it was added.
  app.setErrorHandler(function handleError(err: FastifyError | HeadwayError, request, reply) {
    const mapped = classify(err);
    if (mapped.code === ErrorCode.INTERNAL) request.log.error({ err }, 'request failed');
    else if (mapped.status >= 500) request.log.warn({ code: mapped.code }, mapped.message);
    return sendError(reply, mapped);
  });

  app.setNotFoundHandler(function handleNotFound(request, reply) {
    return sendError(
      reply,
      new HeadwayError(ErrorCode.NOT_FOUND, `no route ${request.method} ${request.url.split('?')[0]}`),
    );
  });

  // Registered before any route so that its onRoute hook sees every route schema.
  await registerOpenApi(app);

  // A browser request from an origin outside the allow-list is refused before
  // anything else runs, preflights included (a refused preflight makes the
  // browser drop the request). Requests without Origin are not from browsers.
  app.addHook('onRequest', function checkOrigin(request, _reply, done) {
    const origin = request.headers.origin;
    if (origin === undefined || ctx.origins.allows(origin, request.headers.host)) {
      done();
      return;
    }
    done(new HeadwayError(ErrorCode.ORIGIN_NOT_ALLOWED, 'origin not allowed'));
  });

  await app.register(cors, {
    delegator: (request, callback) => {
      callback(null, {
        origin: ctx.origins.allows(request.headers.origin, request.headers.host),
        credentials: true,
        methods: ['GET', 'POST', 'DELETE', 'OPTIONS'],
        allowedHeaders: ['Authorization', 'Content-Type'],
        exposedHeaders: ['Retry-After', 'Location'],
        maxAge: 600, // 10 minutes
      });
    },
  });

  const access = createAccess(hub, auth);
  await app.register(async function headwayApi(scope) {
    const api = scope.withTypeProvider<TypeBoxTypeProvider>();
    api.setValidatorCompiler(typeboxValidator);
    // Responses are serialized like WebSocket frames; the response schemas document them.
    api.setSerializerCompiler(() => (data) => JSON.stringify(data));
    api.removeAllContentTypeParsers();
    const parseJson = api.getDefaultJsonParser('error', 'error');
    api.addContentTypeParser(
      'application/json',
      { parseAs: 'string' },
      function parseBody(request, body, done) {
        // An empty body with a JSON content type is "no body", as for the control routes.
        if (body === '') done(null, undefined);
        else parseJson(request, body as string, done);
      },
    );

    addComponentSchemas(api);
    registerOperationRoutes(api, app, ctx);
    await api.register(
      async function v1(scoped) {
        const routes = scoped.withTypeProvider<TypeBoxTypeProvider>();
        routes.addHook('onRequest', access.authenticate);
        registerJobRoutes(routes, ctx, access);
        registerEventRoutes(routes, ctx, access);
        registerControlRoutes(routes, ctx, access);
        registerTokenRoutes(routes, ctx, access);
      },
      { prefix: '/v1' },
    );
  });
}
