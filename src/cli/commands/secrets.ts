/** `gantry secrets set|list|delete`: values come from standard input or a hidden prompt, never the command line. */
import * as readline from 'node:readline/promises';
import { Writable } from 'node:stream';
import type { SecretView } from '../../shared/views';
import type { ApiClient } from '../api-client';
import { table } from '../output';

/** Reads all of a piped standard input; one trailing newline (from `echo` or a file) is dropped. */
async function readPipedValue(input: NodeJS.ReadableStream): Promise<string> {
  const chunks: Buffer[] = [];
  for await (const chunk of input) chunks.push(Buffer.isBuffer(chunk) ? chunk : Buffer.from(chunk as string));
  return Buffer.concat(chunks)
    .toString('utf8')
    .replace(/\r?\n$/, '');
}

/** Asks for a value on the terminal without echoing what is typed. */
async function promptHidden(question: string): Promise<string> {
  let muted = false;
  const output = new Writable({
    write(chunk, encoding, done) {
      if (!muted) process.stderr.write(chunk, encoding);
      done();
    },
  });
  const prompt = readline.createInterface({ input: process.stdin, output, terminal: true });
  try {
    const answer = prompt.question(question);
    muted = true;
    return await answer;
  } finally {
    prompt.close();
    process.stderr.write('\n');
  }
}

/** `gantry secrets set NAME`: creates or rotates a secret; the value is never an argument. */
export async function setSecretCommand(client: ApiClient, name: string, extra: string[], options: { output?: string }): Promise<number> {
  if (extra.length > 0) {
    // Not echoed: the extra argument is probably the value.
    throw new Error(
      'gantry secrets set takes no value on the command line (it would stay in your shell history); pipe it in (gantry secrets set NAME < file) or type it at the hidden prompt',
    );
  }
  const value = process.stdin.isTTY ? await promptHidden(`value of secret ${name}: `) : await readPipedValue(process.stdin);
  if (value === '') throw new Error('the secret value is empty: nothing was set');
  const secret = await client.request<SecretView>('POST', '/v1/secrets', { name, value });
  if (options.output === 'json') console.log(JSON.stringify(secret, null, 2));
  else console.log(`secret ${secret.name} set (id ${secret.id}); replicas started from now on get this value`);
  return 0;
}

/** `gantry secrets list`: names, ids and dates, never values. */
export async function listSecretsCommand(client: ApiClient, options: { output?: string }): Promise<number> {
  const { secrets } = await client.request<{ secrets: SecretView[] }>('GET', '/v1/secrets');
  if (options.output === 'json') console.log(JSON.stringify(secrets, null, 2));
  else
    console.log(
      table(
        ['NAME', 'ID', 'CREATED'],
        secrets.map((secret) => [secret.name, secret.id, secret.created_at]),
      ),
    );
  return 0;
}

/** `gantry secrets delete NAME`. */
export async function deleteSecretCommand(client: ApiClient, name: string): Promise<number> {
  await client.request<{ name: string }>('DELETE', `/v1/secrets/${encodeURIComponent(name)}`);
  console.log(`secret ${name} deleted; running replicas keep the value they started with`);
  return 0;
}
