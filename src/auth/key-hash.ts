/**
 * How an API key is read from a request and hashed: the part of API keys that the data plane
 * (the gateway, which holds no store) shares with the API.
 */
import { createHash } from 'node:crypto';

/** The hash under which a key's secret is stored and looked up. */
export function hashApiKey(secret: string): string {
  return createHash('sha256').update(secret, 'utf8').digest('hex');
}

/** The key from an `Authorization: Api-Key <key>` header (also accepts `Bearer`), if any. */
export function keyFromAuthorization(header: string | undefined): string | undefined {
  const match = /^(?:Api-Key|Bearer)\s+(\S+)\s*$/i.exec(header ?? '');
  return match?.[1];
}
