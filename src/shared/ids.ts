import { randomBytes } from 'node:crypto';

const ALPHABET = 'abcdefghijklmnopqrstuvwxyz0123456789';

/** A random lowercase alphanumeric id such as `m8x2k4qz` (8 characters by default). */
export function newId(length = 8): string {
  const bytes = randomBytes(length * 2);
  let id = '';
  for (let i = 0; id.length < length && i < bytes.length; i++) {
    // 252 = 7 * 36: reject the top of the byte range so every character is equally likely.
    if (bytes[i]! < 252) id += ALPHABET[bytes[i]! % 36];
  }
  return id.length === length ? id : newId(length);
}

/** Whether a string has the shape of an id made by {@link newId}. */
export function looksLikeId(value: string): boolean {
  return /^[a-z0-9]{8}$/.test(value);
}
