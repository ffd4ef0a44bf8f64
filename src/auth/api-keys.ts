/**
 * API keys: `Authorization: Api-Key <key>` on every management and inference route. Keys
 * are random and long, so a SHA-256 of the secret is what the store keeps.
 */
import { randomBytes } from 'node:crypto';
import * as fs from 'node:fs';
import * as path from 'node:path';
import type { ApiKeyRecord, Store } from '../store/store';
import { hashApiKey } from './key-hash';

/** A new random key: `gtk_` and 40 url-safe characters. */
export function generateApiKey(): string {
  return `gtk_${randomBytes(30).toString('base64url')}`;
}

/** The outcome of making sure an admin key exists. */
export interface EnsuredAdminKey {
  /** The secret, only when it was generated just now (to print once). */
  generated?: string;
  /** Where a generated key is kept. */
  file: string;
  record?: ApiKeyRecord;
}

/**
 * Makes sure the stack can be reached: GANTRY_API_KEY, when set, becomes an admin key;
 * otherwise, on the first start, a key is generated, kept in `keyFile` (mode 0600) and
 * returned so that it can be printed once.
 */
export async function ensureAdminKey(store: Store, configuredKey: string | undefined, keyFile: string): Promise<EnsuredAdminKey> {
  if (configuredKey) {
    const hash = hashApiKey(configuredKey);
    const existing = await store.findApiKeyByHash(hash);
    const record = existing ?? (await store.createApiKey({ name: 'admin (GANTRY_API_KEY)', prefix: configuredKey.slice(0, 8), secretHash: hash, role: 'admin' }));
    return { file: keyFile, record };
  }
  if (fs.existsSync(keyFile)) {
    const secret = fs.readFileSync(keyFile, 'utf8').trim();
    const record = await store.findApiKeyByHash(hashApiKey(secret));
    if (record) return { file: keyFile, record };
  }
  const secret = generateApiKey();
  const record = await store.createApiKey({ name: 'admin', prefix: secret.slice(0, 8), secretHash: hashApiKey(secret), role: 'admin' });
  fs.mkdirSync(path.dirname(keyFile), { recursive: true });
  fs.writeFileSync(keyFile, `${secret}\n`, { mode: 0o600 });
  return { generated: secret, file: keyFile, record };
}
