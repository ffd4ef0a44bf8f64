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

/** Runs `gantry predict`; prints the answer body, exits non-zero when the answer is not 2xx. */
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
  const answer = await client.predict(route, body);
  if (options.verbose) console.error(`POST ${route} → ${answer.status} (deployment ${answer.deploymentId ?? '-'})`);
  if (answer.status >= 200 && answer.status < 300) {
    console.log(answer.body);
    return 0;
  }
  console.error(`${answer.status}: ${answer.body}`);
  return 1;
}
