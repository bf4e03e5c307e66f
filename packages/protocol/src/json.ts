/**
 * JSON values as the schemas see them: any value on the wire, typed as JSON for
 * the code that builds or reads it.
 */
import { Type } from '@sinclair/typebox';

export type Json = null | boolean | number | string | Json[] | { [key: string]: Json };
export type JsonObject = { [key: string]: Json };

/**
 * Any JSON value. The schema accepts anything (a recursive schema would become
 * an OpenAPI component of its own); the type says what a JSON body can hold.
 */
export const JsonSchema = (options: { description?: string } = {}) =>
  Type.Unsafe<Json>(Type.Unknown(options));

/** A JSON object with any keys (`metadata`). */
export const JsonObjectSchema = (options: { description?: string } = {}) =>
  Type.Unsafe<JsonObject>(Type.Record(Type.String(), Type.Unknown(), options));
