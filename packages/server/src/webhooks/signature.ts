/**
 * Webhook signatures: `Headway-Signature: t=<unix seconds>,v1=<hex>` where the
 * hex is the HMAC-SHA256 of `"<t>.<body>"` under the webhook's secret. While a
 * rotated secret overlaps, one `v1=` per valid secret is sent, newest first; a
 * receiver accepts the request when any of them matches its secret.
 */
import { createHmac, timingSafeEqual } from 'node:crypto';

/** How old a signature's `t` may be before `verifyWebhookSignature` refuses it, seconds. */
export const DEFAULT_SIGNATURE_TOLERANCE_SECONDS = 300;

/** The hex HMAC-SHA256 of `"<t>.<body>"`. */
export function signaturePart(secret: string, t: number, body: string): string {
  return createHmac('sha256', secret).update(`${t}.${body}`).digest('hex');
}

/** The `Headway-Signature` header for `body` signed at `t` (unix seconds) with each secret. */
export function signatureHeader(secrets: readonly string[], t: number, body: string): string {
  return [`t=${t}`, ...secrets.map((s) => `v1=${signaturePart(s, t, body)}`)].join(',');
}

export interface VerifyOptions {
  /** Oldest (and furthest in the future) accepted `t`, seconds from now. Default 300. */
  toleranceSeconds?: number;
  /** The current time, ms. Default `Date.now()`. */
  now?: number;
}

/**
 * Whether `header` is a valid signature of `body` (the raw request body, exactly
 * as received) under `secret`, made within the tolerance. Compares in constant time.
 */
export function verifyWebhookSignature(
  secret: string,
  header: string | null | undefined,
  body: string,
  options: VerifyOptions = {},
): boolean {
  if (!header) return false;
  let t: number | undefined;
  const candidates: string[] = [];
  for (const part of header.split(',')) {
    const eq = part.indexOf('=');
    const key = part.slice(0, eq).trim();
    const value = part.slice(eq + 1).trim();
    if (key === 't' && /^\d+$/.test(value)) t = Number(value);
    else if (key === 'v1') candidates.push(value);
  }
  if (t === undefined || candidates.length === 0) return false;
  const now = (options.now ?? Date.now()) / 1000;
  if (Math.abs(now - t) > (options.toleranceSeconds ?? DEFAULT_SIGNATURE_TOLERANCE_SECONDS)) return false;
  const expected = Buffer.from(signaturePart(secret, t, body), 'hex');
  return candidates.some((hex) => {
    const given = Buffer.from(hex, 'hex');
    return given.length === expected.length && timingSafeEqual(given, expected);
  });
}
