/**
 * Encryption of secret values at rest: AES-256-GCM with a fresh 12-byte IV per value and the
 * secret's name as additional authenticated data (a value cannot be moved to another name).
 * The 32-byte key lives in GANTRY_HOME/secrets.key (mode 0600); whichever process needs it
 * first creates it, atomically, and no process ever overwrites it.
 */
import { createCipheriv, createDecipheriv, randomBytes } from 'node:crypto';
import * as fs from 'node:fs';
import { createFileOnce } from '../home';
import type { SealedSecretValue } from '../store/store';

/** Bytes of an AES-256 key. */
export const SECRET_KEY_BYTES = 32;
const IV_BYTES = 12;
const ALGORITHM = 'aes-256-gcm';

/**
 * Reads the key file, creating it first if there is none: a new random key is written to a
 * private temporary file and hard-linked into place, which fails if another process got there
 * first (then that key is read). An existing key is never replaced.
 */
export function loadOrCreateSecretKey(file: string): Buffer {
  const existing = readKeyIfPresent(file);
  if (existing) return existing;
  createFileOnce(file, randomBytes(SECRET_KEY_BYTES));
  const key = readKeyIfPresent(file);
  if (!key) throw new Error(`the secrets key ${file} vanished while it was being created`);
  return key;
}

function readKeyIfPresent(file: string): Buffer | undefined {
  let key: Buffer;
  try {
    key = fs.readFileSync(file);
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw error;
  }
  if (key.length !== SECRET_KEY_BYTES) {
    throw new Error(`the secrets key ${file} holds ${key.length} bytes, not ${SECRET_KEY_BYTES}: restore it from a backup (secrets sealed with another key cannot be read)`);
  }
  return key;
}

/** Seals and opens secret values with one key. */
export class SecretBox {
  constructor(private readonly key: Buffer) {
    if (key.length !== SECRET_KEY_BYTES) throw new Error(`a secrets key has ${SECRET_KEY_BYTES} bytes (got ${key.length})`);
  }

  /** The box of the key in `file`, which is created if there is none. */
  static fromKeyFile(file: string): SecretBox {
    return new SecretBox(loadOrCreateSecretKey(file));
  }

  /** Encrypts a value for the secret called `name`. */
  seal(name: string, value: string): SealedSecretValue {
    const iv = randomBytes(IV_BYTES);
    const cipher = createCipheriv(ALGORITHM, this.key, iv);
    cipher.setAAD(Buffer.from(name, 'utf8'));
    const ciphertext = Buffer.concat([cipher.update(value, 'utf8'), cipher.final()]);
    return { ciphertext, iv, auth_tag: cipher.getAuthTag() };
  }

  /** Decrypts the value of the secret called `name`; throws if the key, the name or any byte is wrong. */
  open(name: string, sealed: SealedSecretValue): string {
    const decipher = createDecipheriv(ALGORITHM, this.key, sealed.iv);
    decipher.setAAD(Buffer.from(name, 'utf8'));
    decipher.setAuthTag(sealed.auth_tag);
    try {
      return Buffer.concat([decipher.update(sealed.ciphertext), decipher.final()]).toString('utf8');
    } catch {
      throw new Error(`secret "${name}" cannot be decrypted with this key (was secrets.key replaced?)`);
    }
  }
}
