/** The gateway's API key check: each key hashed once, its validity read from the current snapshot. */
import { hashApiKey } from '../../auth/key-hash';

/** How many distinct keys keep their hash (the oldest is forgotten past it). */
const CACHED_KEYS = 1024;

/**
 * Raw key → its SHA-256, bounded (insertion order: the oldest entry goes first). Only the hash
 * is cached, never a verdict: whether the key is valid is always asked of the current hash set,
 * so a key revoked by a snapshot is refused by the first request after it.
 */
export class KeyHashCache {
  private readonly hashes = new Map<string, string>();

  /** The key's hash, computed on its first use. */
  hashOf(key: string): string {
    let hash = this.hashes.get(key);
    if (hash !== undefined) return hash;
    hash = hashApiKey(key);
    if (this.hashes.size >= CACHED_KEYS) this.hashes.delete(this.hashes.keys().next().value as string);
    this.hashes.set(key, hash);
    return hash;
  }

  /** Whether `key` is one of `validHashes`. */
  isValid(key: string, validHashes: ReadonlySet<string>): boolean {
    return validHashes.has(this.hashOf(key));
  }
}
