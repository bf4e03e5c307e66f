import {
  createHash,
  createHmac,
  createSecretKey,
  type KeyObject,
  randomBytes,
  timingSafeEqual,
  webcrypto,
} from 'node:crypto';
import { ErrorCode } from '@headway/protocol';
import { decodeJwt, decodeProtectedHeader, type JWTPayload, SignJWT } from 'jose';
import { TokenCache } from './auth-cache.js';
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
      /** Expiry, seconds since epoch (every verified token has one). */
      exp: number | null;
    };

export interface AuthOptions {
  /** HS256 secret for browser tokens (at least 32 bytes). */
  jwtSecret: string;
  /** API keys for workers and back ends. */
  apiKeys: readonly string[];
  /** Issuer claim set on minted tokens and required on verified ones. */
  issuer?: string;
  /**
   * Longest time a verified token may still be valid, seconds (`exp` at most this
   * far ahead): a token signed elsewhere with a longer life is refused. Default 7 days.
   */
  maxTtlSeconds?: number;
  /** Verified tokens remembered until they expire (default 10,000); 0 turns the cache off. */
  tokenCacheSize?: number;
}

export interface MintOptions {
  user: string;
  jobs?: readonly string[];
  admin?: boolean;
  /** Lifetime in seconds. */
  ttl: number;
}

const ISSUER = 'headway';
/** Distinct token headers remembered as accepted (every signer of a deployment uses one or two). */
const ACCEPTED_HEADERS = 16;
const DEFAULT_MAX_TTL_SECONDS = 7 * 24 * 3_600; // 7 days, the default of `maxTokenTtlSeconds`

/**
 * Verifies credentials and mints browser tokens. API keys are compared through
 * their SHA-256 digests, so lookup time does not depend on how much of a key matched.
 */
export class Auth {
  /** The HMAC key for minting, imported once per process rather than by jose at every signature. */
  private readonly secret: Promise<webcrypto.CryptoKey>;
  /** The same key for verifying, with Node's synchronous HMAC. */
  private readonly verifyKey: KeyObject;
  private readonly keys = new Map<string, string>();
  private readonly issuer: string;
  private readonly maxTtlSeconds: number;
  private readonly cache: TokenCache | null;
  /** Whether an API key has the shape of a token (three dot-separated parts). */
  private readonly tokenShapedKeys: boolean;
  /** Encoded token headers that passed the header checks, at most {@link ACCEPTED_HEADERS}. */
  private readonly acceptedHeaders = new Set<string>();

  constructor(options: AuthOptions) {
    if (Buffer.byteLength(options.jwtSecret) < 32) {
      throw new TypeError('jwtSecret must be at least 32 bytes');
    }
    this.secret = webcrypto.subtle.importKey(
      'raw',
      new TextEncoder().encode(options.jwtSecret),
      { name: 'HMAC', hash: 'SHA-256' },
      false,
      ['sign'],
    );
    this.verifyKey = createSecretKey(Buffer.from(options.jwtSecret));
    this.issuer = options.issuer ?? ISSUER;
    this.maxTtlSeconds = options.maxTtlSeconds ?? DEFAULT_MAX_TTL_SECONDS;
    const size = options.tokenCacheSize ?? undefined;
    this.cache = size === 0 ? null : new TokenCache(size);
    for (const key of options.apiKeys) this.keys.set(digest(key), `key:${digest(key).slice(0, 8)}`);
    this.tokenShapedKeys = options.apiKeys.some((key) => JWT_SHAPE.test(key));
  }

  /** Authenticate a bearer credential: an API key or a browser token. */
  async authenticate(credential: string | undefined | null): Promise<Principal> {
    if (!credential) throw new HeadwayError(ErrorCode.UNAUTHORIZED, 'missing credentials');
    // A token has three dot-separated parts; anything else was meant as an API key, and is named so.
    const tokenShaped = JWT_SHAPE.test(credential);
    // A token is not hashed to look for it among the API keys when no key has its shape.
    if (!tokenShaped || this.tokenShapedKeys) {
      const keyId = this.keys.get(digest(credential));
      if (keyId) return { kind: 'key', id: keyId };
    }
    if (!tokenShaped) throw new HeadwayError(ErrorCode.UNAUTHORIZED, 'invalid API key');
    return this.verifyToken(credential);
  }

  /** Verify a browser token (API keys are not accepted here). */
  async verifyToken(token: string): Promise<Principal> {
    const cached = this.cache?.get(token);
    if (cached) return cached;
    const principal = await this.verifyUncached(token);
    this.cache?.set(token, principal);
    return principal;
  }

  /**
   * Verify a browser token: HS256 only, signed with the hub's secret, issued by
   * the hub, with an `exp` still ahead (and an `nbf`, if any, passed).
   *
   * `jose` decodes the header and the claims; the signature is checked with
   * Node's synchronous HMAC rather than `jose`'s WebCrypto one, an asynchronous
   * job per token that made verification the largest single cost of a new
   * connection. The claims are checked as `jose`'s `jwtVerify` checks them.
   */
  private async verifyUncached(token: string): Promise<Principal> {
    const payload = this.verifiedClaims(token);
    if (typeof payload.sub !== 'string' || payload.sub === '') {
      throw new HeadwayError(ErrorCode.UNAUTHORIZED, 'token has no subject');
    }
    const exp = payload.exp!;
    if (exp - Date.now() / 1000 > this.maxTtlSeconds) {
      throw new HeadwayError(ErrorCode.UNAUTHORIZED, 'token lives longer than the maximum lifetime');
    }
    // Anything but a list of job ids would silently widen the token to all of the user's jobs.
    if (
      payload.jobs !== undefined &&
      !(Array.isArray(payload.jobs) && payload.jobs.every((j) => typeof j === 'string'))
    ) {
      throw new HeadwayError(ErrorCode.UNAUTHORIZED, 'the "jobs" claim must be a list of job ids');
    }
    return {
      kind: 'user',
      user: payload.sub,
      jobs: payload.jobs === undefined ? null : new Set(payload.jobs as string[]),
      admin: payload.role === 'admin',
      exp,
    };
  }

  /** The claims of a token whose signature and standard claims hold; throws UNAUTHORIZED or TOKEN_EXPIRED. */
  private verifiedClaims(token: string): JWTPayload {
    const invalid = () => new HeadwayError(ErrorCode.UNAUTHORIZED, 'invalid token');
    if (!JWT_SHAPE.test(token)) throw invalid();
    const dot = token.lastIndexOf('.');
    const headerPart = token.slice(0, token.indexOf('.'));
    if (!this.acceptedHeaders.has(headerPart)) {
      let header: ReturnType<typeof decodeProtectedHeader>;
      try {
        header = decodeProtectedHeader(token);
      } catch {
        throw invalid();
      }
      // No other algorithm, and no extension (`crit`, an unencoded payload) that this check would ignore.
      if (header.alg !== 'HS256' || header.crit !== undefined || header.b64 !== undefined) throw invalid();
      // Tokens from one signer share their header: the few seen are not decoded again.
      if (this.acceptedHeaders.size < ACCEPTED_HEADERS) this.acceptedHeaders.add(headerPart);
    }
    // Compared in its canonical encoding: a signature spelled another way (the
    // unused bits of its last character set) is not the one the hub made.
    const expected = Buffer.from(
      createHmac('sha256', this.verifyKey).update(token.slice(0, dot)).digest('base64url'),
    );
    const given = Buffer.from(token.slice(dot + 1));
    if (given.length !== expected.length || !timingSafeEqual(given, expected)) throw invalid();
    // Only a payload the hub signed is parsed.
    let payload: JWTPayload;
    try {
      payload = decodeJwt(token);
    } catch {
      throw invalid();
    }
    // The claims, as jose's jwtVerify checks them (whole seconds, no clock tolerance).
    const now = Math.floor(Date.now() / 1000);
    if (payload.iss !== this.issuer) throw invalid();
    // A token without `exp` would be valid forever: refused.
    if (typeof payload.exp !== 'number' || !Number.isFinite(payload.exp)) throw invalid();
    if (payload.nbf !== undefined && (typeof payload.nbf !== 'number' || payload.nbf > now)) throw invalid();
    if (payload.iat !== undefined && typeof payload.iat !== 'number') throw invalid();
    if (payload.exp <= now) throw new HeadwayError(ErrorCode.TOKEN_EXPIRED, 'token expired');
    return payload;
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
      .sign(await this.secret);
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
