import { createHash, randomBytes } from 'node:crypto';
import { ErrorCode } from '@headway/protocol';
import { errors as joseErrors, jwtVerify, SignJWT } from 'jose';
import { HeadwayError } from './errors.js';

/** The shape of a compact JWS: header.payload.signature, each base64url. */
const JWT_SHAPE = /^[\w-]+\.[\w-]+\.[\w-]*$/;
/** Who is calling: a worker or back end holding an API key, or a user holding a browser token. */
export type Principal =
  | { kind: 'key'; id: string }
  | {
      kind: 'user';
      user: string;
      /** Jobs the token is limited to (and their children); null: all jobs the user owns. */
      jobs: ReadonlySet<string> | null;
      admin: boolean;
      /** Expiry, seconds since epoch. */
      exp: number | null;
    };

export interface AuthOptions {
  /** HS256 secret for browser tokens (at least 32 bytes). */
  jwtSecret: string;
  /** API keys for workers and back ends. */
  apiKeys: readonly string[];
  /** Issuer claim set on minted tokens and required on verified ones. */
  issuer?: string;
}

export interface MintOptions {
  user: string;
  jobs?: readonly string[];
  admin?: boolean;
  /** Lifetime in seconds. */
  ttl: number;
}

const ISSUER = 'headway';

/**
 * Verifies credentials and mints browser tokens. API keys are compared through
 * their SHA-256 digests, so lookup time does not depend on how much of a key matched.
 */
export class Auth {
  private readonly secret: Uint8Array;
  private readonly keys = new Map<string, string>();
  private readonly issuer: string;

  constructor(options: AuthOptions) {
    if (Buffer.byteLength(options.jwtSecret) < 32) {
      throw new TypeError('jwtSecret must be at least 32 bytes');
    }
    this.secret = new TextEncoder().encode(options.jwtSecret);
    this.issuer = options.issuer ?? ISSUER;
    for (const key of options.apiKeys) this.keys.set(digest(key), `key:${digest(key).slice(0, 8)}`);
  }

  /** Authenticate a bearer credential: an API key or a browser token. */
  async authenticate(credential: string | undefined | null): Promise<Principal> {
    if (!credential) throw new HeadwayError(ErrorCode.UNAUTHORIZED, 'missing credentials');
    const keyId = this.keys.get(digest(credential));
    if (keyId) return { kind: 'key', id: keyId };
    // A token has three dot-separated parts; anything else was meant as an API key, and is named so.
    if (!JWT_SHAPE.test(credential)) throw new HeadwayError(ErrorCode.UNAUTHORIZED, 'invalid API key');
    return this.verifyToken(credential);
  }

  /** Verify a browser token (API keys are not accepted here). */
  async verifyToken(token: string): Promise<Principal> {
    try {
      const { payload } = await jwtVerify(token, this.secret, { algorithms: ['HS256'], issuer: this.issuer });
      if (typeof payload.sub !== 'string' || payload.sub === '') {
        throw new HeadwayError(ErrorCode.UNAUTHORIZED, 'token has no subject');
      }
      const jobs = Array.isArray(payload.jobs)
        ? new Set(payload.jobs.filter((j) => typeof j === 'string'))
        : null;
      return {
        kind: 'user',
        user: payload.sub,
        jobs,
        admin: payload.role === 'admin',
        exp: typeof payload.exp === 'number' ? payload.exp : null,
      };
    } catch (err) {
      if (err instanceof HeadwayError) throw err;
      if (err instanceof joseErrors.JWTExpired)
        throw new HeadwayError(ErrorCode.TOKEN_EXPIRED, 'token expired');
      throw new HeadwayError(ErrorCode.UNAUTHORIZED, 'invalid token');
    }
  }

  /** Mint a browser token scoped to a user, or to a list of jobs. */
  async mint(options: MintOptions): Promise<{ token: string; expiresAt: string }> {
    const now = Math.floor(Date.now() / 1000);
    const exp = now + options.ttl;
    const claims: Record<string, unknown> = {};
    if (options.jobs) claims.jobs = [...options.jobs];
    if (options.admin) claims.role = 'admin';
    const token = await new SignJWT(claims)
      .setProtectedHeader({ alg: 'HS256', typ: 'JWT' })
      .setSubject(options.user)
      .setIssuer(this.issuer)
      .setIssuedAt(now)
      .setExpirationTime(exp)
      .sign(this.secret);
    return { token, expiresAt: new Date(exp * 1000).toISOString() };
  }
}

function digest(value: string): string {
  return createHash('sha256').update(value).digest('hex');
}

/** A random secret or key, URL-safe. */
export function generateSecret(bytes = 32): string {
  return randomBytes(bytes).toString('base64url');
}
