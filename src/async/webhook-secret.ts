/** The secret async webhooks are signed with, and the signature itself. */
import { createHmac, randomBytes } from 'node:crypto';
import * as fs from 'node:fs';
import { createFileOnce } from '../home';

/**
 * The operator's webhook secret: GANTRY_WEBHOOK_SECRET when set, else the one kept in `file`
 * (mode 0600), created by `npm start` or on first use (createFileOnce: two processes creating it
 * at once end up with the same secret).
 */
export function loadWebhookSecret(configured: string | undefined, file: string): string {
  if (configured) return configured;
  try {
    return fs.readFileSync(file, 'utf8').trim();
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code !== 'ENOENT') throw error;
  }
  createFileOnce(file, `whsec_${randomBytes(32).toString('base64url')}\n`);
  return fs.readFileSync(file, 'utf8').trim();
}

/** The signature header's value for a body: `v1=<hex HMAC-SHA256 of the exact bytes>`. */
export function signWebhookBody(secret: string, body: string | Buffer): string {
  return `v1=${createHmac('sha256', secret).update(body).digest('hex')}`;
}
