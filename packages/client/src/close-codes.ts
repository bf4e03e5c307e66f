/**
 * The protocol's close codes that the client uses, each typed as the protocol's
 * own constant, so that a change there fails the build here.
 *
 * They are written out rather than read from `CloseCode` because importing that
 * object bundles all of it (about 250 bytes of the client's 8 KB, min+gzip):
 * minifiers inline constants, not the properties of an object.
 */
import type { CloseCode } from '@headway/protocol/codes';

type Code<K extends keyof typeof CloseCode> = (typeof CloseCode)[K];

/** The first of the "reconnect" range; codes below it are standard WebSocket codes, not the hub's. */
export const RECONNECT: Code<'RECONNECT'> = 4000;
export const HEARTBEAT_TIMEOUT: Code<'HEARTBEAT_TIMEOUT'> = 4003;
export const TOKEN_EXPIRED: Code<'TOKEN_EXPIRED'> = 4101;
export const TOKEN_INVALID: Code<'TOKEN_INVALID'> = 4102;
export const FORBIDDEN: Code<'FORBIDDEN'> = 4201;
