/**
 * Which webhook URLs the hub may send to. In production a URL whose host
 * resolves to a loopback, private, link-local (cloud metadata), shared, multicast
 * or otherwise reserved address is refused, so that whoever holds an API key
 * cannot make the hub reach into its own network (server-side request forgery);
 * `http:` is refused too. `allowPrivate` and `allowHttp` lift each refusal;
 * development allows both.
 *
 * The check runs when a webhook is created and again before every attempt, since
 * a name may resolve elsewhere later. The attempt itself resolves the name once
 * more; a name that changes its answer between the two lookups (DNS rebinding) is
 * the gap that remains, documented in docs/webhooks.md.
 */
import { lookup } from 'node:dns/promises';
import { BlockList, isIP } from 'node:net';
import { ErrorCode } from '@headway/protocol';
import { HeadwayError } from '../errors.js';

export interface TargetPolicy {
  /** Refuse private addresses and `http:` unless allowed below. */
  production: boolean;
  allowPrivate: boolean;
  allowHttp: boolean;
}

/** Resolves a host name to its addresses; injectable for tests. */
export type Resolve = (host: string) => Promise<string[]>;

const resolveAll: Resolve = async (host) => (await lookup(host, { all: true })).map((a) => a.address);

/** Addresses a webhook may not reach in production (IANA special-purpose registries). */
const BLOCKED = new BlockList();
for (const [net, prefix] of [
  ['0.0.0.0', 8], // "this network"
  ['10.0.0.0', 8], // private
  ['100.64.0.0', 10], // shared address space (carrier-grade NAT)
  ['127.0.0.0', 8], // loopback
  ['169.254.0.0', 16], // link-local, where cloud metadata services answer (169.254.169.254)
  ['172.16.0.0', 12], // private
  ['192.0.0.0', 24], // IETF protocol assignments (some metadata services)
  ['192.168.0.0', 16], // private
  ['198.18.0.0', 15], // benchmarking
  ['224.0.0.0', 4], // multicast
  ['240.0.0.0', 4], // reserved, broadcast
] as const) {
  BLOCKED.addSubnet(net, prefix, 'ipv4');
}
for (const [net, prefix] of [
  ['::', 128], // unspecified
  ['::1', 128], // loopback
  ['fc00::', 7], // unique local (incl. the AWS metadata service's fd00:ec2::254)
  ['fe80::', 10], // link-local
  ['ff00::', 8], // multicast
] as const) {
  BLOCKED.addSubnet(net, prefix, 'ipv6');
}

/** Whether an IP address (v4 or v6) is one a production webhook may not reach. */
export function isPrivateAddress(address: string): boolean {
  // An IPv4-mapped or NAT64 IPv6 address reaches the IPv4 address inside it.
  const mapped = /^(?:::ffff:|64:ff9b::)(\d+\.\d+\.\d+\.\d+)$/i.exec(address);
  if (mapped) return BLOCKED.check(mapped[1]!, 'ipv4');
  const family = isIP(address);
  if (family === 4) return BLOCKED.check(address, 'ipv4');
  if (family === 6) return BLOCKED.check(address, 'ipv6');
  return true;
}

function refused(message: string): HeadwayError {
  return new HeadwayError(ErrorCode.WEBHOOK_TARGET_REFUSED, message);
}

/**
 * The URL, parsed, when the policy allows sending to it.
 *
 * @throws HeadwayError HW_ERR_INVALID_VALUE for a URL that does not parse or is not
 * http(s); HW_ERR_WEBHOOK_TARGET_REFUSED for a target the policy refuses.
 */
export async function checkTarget(raw: string, policy: TargetPolicy, resolve = resolveAll): Promise<URL> {
  let url: URL;
  try {
    url = new URL(raw);
  } catch {
    throw new HeadwayError(ErrorCode.INVALID_VALUE, `"${raw}" is not a URL`);
  }
  if (url.protocol !== 'https:' && url.protocol !== 'http:') {
    throw new HeadwayError(
      ErrorCode.INVALID_VALUE,
      `a webhook URL must be https: or http: (got ${url.protocol})`,
    );
  }
  if (url.username !== '' || url.password !== '') {
    throw new HeadwayError(
      ErrorCode.INVALID_VALUE,
      'a webhook URL may not hold credentials; verify signatures instead',
    );
  }
  if (!policy.production) return url;
  if (url.protocol === 'http:' && !policy.allowHttp) {
    throw refused('http: webhook URLs are refused in production (use https:, or --webhook-allow-http)');
  }
  if (policy.allowPrivate) return url;
  const host = url.hostname.replace(/^\[(.*)\]$/, '$1');
  let addresses: string[];
  if (isIP(host) !== 0) addresses = [host];
  else {
    try {
      addresses = await resolve(host);
    } catch {
      throw refused(`the webhook host "${host}" does not resolve`);
    }
  }
  if (addresses.length === 0 || addresses.some(isPrivateAddress)) {
    throw refused(
      `the webhook host "${host}" resolves to a private, loopback, link-local or reserved address (allow with --webhook-allow-private)`,
    );
  }
  return url;
}
