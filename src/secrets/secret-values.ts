/**
 * Reading secret values where a replica starts (the node): the declared names are looked up
 * in the store and decrypted in memory, to be handed to the model server through a pipe.
 */
import { missingSecretMessage } from '../shared/secrets';
import type { Store } from '../store/store';
import { SecretBox } from './secret-box';

/** A declared secret that is not set: its message is `secret "x" is not set`. */
export class MissingSecretError extends Error {
  override name = 'MissingSecretError';
  constructor(readonly secretName: string) {
    super(missingSecretMessage(secretName));
  }
}

/** Decrypts the values of the named secrets; rejects with MissingSecretError for the first one not set. */
export type SecretResolver = (names: string[]) => Promise<Record<string, string>>;

/** A resolver over the store and the key in `keyFile` (read, or created, on first use). */
export function storeSecretResolver(store: Pick<Store, 'readSecretCiphertexts'>, keyFile: string): SecretResolver {
  let box: SecretBox | undefined;
  return async (names) => {
    if (names.length === 0) return {};
    const sealed = new Map((await store.readSecretCiphertexts(names)).map((secret) => [secret.name, secret]));
    const missing = [...names].sort().find((name) => !sealed.has(name));
    if (missing !== undefined) throw new MissingSecretError(missing);
    box ??= SecretBox.fromKeyFile(keyFile);
    const values: Record<string, string> = {};
    for (const name of names) values[name] = box.open(name, sealed.get(name)!);
    return values;
  };
}
