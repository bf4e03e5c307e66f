/**
 * Request validation and error mapping of the REST API: one validator (the
 * TypeBox checker the WebSocket transport uses too) and one mapping of every
 * failure to its `HW_ERR_*` code.
 */
import { describeUnsafeValue, describeValueError, ErrorCode, findUnsafeValue } from '@headway/protocol';
import type { TSchema } from '@sinclair/typebox';
import { TypeCompiler } from '@sinclair/typebox/compiler';
import { Value } from '@sinclair/typebox/value';
import type { FastifyError } from 'fastify';
import { HeadwayError } from '../../errors.js';
import { asHeadwayError } from '../../hub.js';
import { StoreUnavailableError } from '../../store/store.js';

/**
 * Validates request parts with TypeBox's compiled checker, the validator the
 * WebSocket transport uses too. Querystring and params arrive as strings and are
 * converted first; an absent body counts as `{}` when the schema requires no field
 * (so `POST /v1/jobs/:id/cancel` works without a body).
 */
export function typeboxValidator({ schema, httpPart }: { schema: TSchema; httpPart?: string }) {
  const check = TypeCompiler.Compile(schema);
  const convert = httpPart === 'querystring' || httpPart === 'params';
  const emptyBodyAllowed = httpPart === 'body' && Value.Check(schema, {});
  return function validate(data: unknown) {
    let value = data;
    if (convert) value = Value.Convert(schema, value);
    else if ((value === null || value === undefined) && emptyBodyAllowed) value = {};
    if (check.Check(value)) {
      // Every part but the headers: a body, a query string or a path segment may carry a NUL.
      const found = findUnsafeValue(value);
      if (found === null) return { value };
      // A HeadwayError keeps its code through Fastify's validation wrapper.
      return {
        error: new HeadwayError(
          ErrorCode.INVALID_VALUE,
          `${httpPart ?? 'request'}${describeUnsafeValue(found)}`,
        ),
      };
    }
    const first = check.Errors(value).First();
    const where = `${httpPart ?? 'request'}${first?.path ?? ''}`;
    return { error: new Error(first ? `${where}: ${describeValueError(first)}` : `invalid ${where}`) };
  };
}

/** Map any error to its status and `HW_ERR_*` code. */
export function classify(err: FastifyError | HeadwayError | Error): HeadwayError {
  if (err instanceof HeadwayError) return err;
  if (err instanceof StoreUnavailableError) return asHeadwayError(err);
  const code = (err as FastifyError).code;
  switch (code) {
    case 'FST_ERR_VALIDATION':
      return new HeadwayError(ErrorCode.INVALID_MESSAGE, err.message);
    case 'FST_ERR_CTP_INVALID_JSON_BODY':
    case 'FST_ERR_CTP_EMPTY_JSON_BODY':
      return new HeadwayError(ErrorCode.BAD_JSON, 'the body is not valid JSON');
    case 'FST_ERR_CTP_BODY_TOO_LARGE':
      return new HeadwayError(ErrorCode.PAYLOAD_TOO_LARGE, 'the body is larger than the limit');
    case 'FST_ERR_CTP_INVALID_MEDIA_TYPE':
      return new HeadwayError(ErrorCode.INVALID_MESSAGE, 'unsupported content type; send application/json');
  }
  // Other request-level failures Fastify detects (bad Content-Length, bad URL …).
  const status = (err as FastifyError).statusCode;
  if (code?.startsWith('FST_') && status !== undefined && status >= 400 && status < 500) {
    return new HeadwayError(ErrorCode.INVALID_MESSAGE, err.message);
  }
  return new HeadwayError(ErrorCode.INTERNAL, 'internal error', { cause: err });
}
