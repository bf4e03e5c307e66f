import { createHmac } from 'node:crypto';

/**
 * Browser tokens for the bench's viewers, signed here with the hub's HS256 secret
 * (the same claims the hub's `POST /v1/tokens` mints) so that thousands of them
 * cost no round trips.
 */
export function signViewerToken(secret, { user, jobs, ttlSeconds = 3_600 }) {
  const now = Math.floor(Date.now() / 1000);
  const header = base64url({ alg: 'HS256', typ: 'JWT' });
  const claims = base64url({ sub: user, jobs, iss: 'headway', iat: now, exp: now + ttlSeconds });
  const signature = createHmac('sha256', secret).update(`${header}.${claims}`).digest('base64url');
  return `${header}.${claims}.${signature}`;
}

function base64url(value) {
  return Buffer.from(JSON.stringify(value)).toString('base64url');
}
