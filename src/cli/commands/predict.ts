/** `gantry predict`: calls a model through the gateway, by environment or deployment. */
import * as fs from 'node:fs';
import type { ApiClient } from '../api-client';

/** The options `gantry predict` takes. */
export interface PredictCommandOptions {
  deployment?: string;
  environment?: string;
  data?: string;
  verbose?: boolean;
}

/** The request body: `--data JSON`, `--data @file.json`, or `--data -` for standard input. */
export function readData(data: string | undefined): string {
  if (data === undefined) throw new Error('give the model input with --data JSON (or @file, or - for stdin)');
  const text = data === '-' ? fs.readFileSync(0, 'utf8') : data.startsWith('@') ? fs.readFileSync(data.slice(1), 'utf8') : data;
  try {
    JSON.parse(text);
  } catch (error) {
    throw new Error(`--data is not valid JSON: ${(error as Error).message}`);
  }
  return text;
}

/** Runs `gantry predict`; prints the answer body as it arrives (a stream chunk by chunk), exits non-zero when the answer is not 2xx. */
export async function predictCommand(client: ApiClient, modelRef: string, options: PredictCommandOptions): Promise<number> {
  if (options.deployment && options.environment) throw new Error('give --deployment or --environment, not both');
  const body = readData(options.data);
  const model = await client.getModel(modelRef);
  let route: string;
  if (options.deployment) {
    const deployment = await client.getDeployment(model.id, options.deployment);
    route = `/models/${model.id}/deployment/${deployment.id}/predict`;
  } else {
    const environment = options.environment ?? 'production';
    route = environment === 'production' ? `/models/${model.id}/production/predict` : `/models/${model.id}/environments/${encodeURIComponent(environment)}/predict`;
  }
  const answer = await client.predictStream(route, body);
  if (options.verbose) console.error(`POST ${route} → ${answer.status} (deployment ${answer.deploymentId ?? '-'})`);
  if (answer.status >= 200 && answer.status < 300) {
    await printAsItArrives(answer.chunks);
    return 0;
  }
  const decoder = new TextDecoder();
  let text = '';
  for await (const chunk of answer.chunks) text += decoder.decode(chunk, { stream: true });
  console.error(`${answer.status}: ${text + decoder.decode()}`);
  return 1;
}

/** Writes each chunk to standard output the moment it arrives (waiting when the output is full), then a newline if the body did not end with one. */
async function printAsItArrives(chunks: AsyncIterable<Uint8Array>): Promise<void> {
  let last: number | undefined;
  for await (const chunk of chunks) {
    if (chunk.length === 0) continue;
    last = chunk[chunk.length - 1];
    if (!process.stdout.write(chunk)) await new Promise<void>((resolve) => process.stdout.once('drain', () => resolve()));
  }
  if (last !== 0x0a) process.stdout.write('\n');
}
