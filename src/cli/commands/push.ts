/** `gantry push`: packs a model directory, pushes it, and optionally waits until it serves. */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { labelsSchema } from '../../shared/schemas';
import type { ApiClientError, ApiClient } from '../api-client';
import { modelNameFor, packModelDirectory } from '../package-archive';
import { FAILED, waitForDeployment } from '../waits';
import { followPromotion } from './environments';
import { watchCommand } from './watch';
import type { DeploymentView, PromotionView } from '../../shared/views';

/** The options `gantry push` takes. */
export interface PushCommandOptions {
  watch?: boolean;
  promote?: boolean;
  environment?: string;
  modelName?: string;
  deploymentName?: string;
  labels?: string;
  wait?: boolean;
  timeoutSeconds?: string;
  output?: string;
}

function parseLabels(text: string | undefined): Record<string, string> | undefined {
  if (text === undefined) return undefined;
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch {
    throw new Error(`--labels must be a JSON object such as '{"team":"ml"}'`);
  }
  const parsed = labelsSchema.safeParse(value);
  if (!parsed.success) throw new Error(`--labels: ${parsed.error.issues.map((i) => `${i.path.join('.') || 'labels'}: ${i.message}`).join('; ')}`);
  return parsed.data;
}

/** Waits until the deploy workflow has started the promotion the push asked for; its id. */
async function waitForPromotionStart(client: ApiClient, deployment: DeploymentView, environment: string, timeoutSeconds: number): Promise<string> {
  const deadline = Date.now() + timeoutSeconds * 1000;
  for (;;) {
    const { promotions } = await client.request<{ promotions: PromotionView[] }>(
      'GET',
      `/v1/models/${deployment.model_id}/environments/${encodeURIComponent(environment)}/promotions`,
    );
    const mine = promotions.find((p) => p.candidate_deployment_id === deployment.id);
    if (mine) return mine.id;
    const audit = await client.request<{ audit_logs: { action: string; target: string | null; details: Record<string, unknown> }[] }>(
      'GET',
      `/v1/models/${deployment.model_id}/audit_logs`,
    );
    const refusal = audit.audit_logs.find((e) => e.action === 'PROMOTION_REFUSED' && e.target === deployment.id);
    if (refusal) throw new Error(`the promotion to ${environment} was refused: ${String(refusal.details.reason)}`);
    if (Date.now() > deadline) throw new Error(`the promotion to ${environment} did not start within ${timeoutSeconds} s`);
    await new Promise((resolve) => setTimeout(resolve, 500));
  }
}

/** Runs `gantry push`; returns the process exit code. */
export async function pushCommand(client: ApiClient, dir: string, options: PushCommandOptions): Promise<number> {
  const json = options.output === 'json';
  const log = (line: string): void => {
    if (!json) console.log(line);
  };
  if (!fs.existsSync(dir) || !fs.statSync(dir).isDirectory()) throw new Error(`${dir} is not a directory`);
  const timeoutSeconds = Number(options.timeoutSeconds ?? 1800);
  if (!Number.isFinite(timeoutSeconds) || timeoutSeconds <= 0) throw new Error('--timeout-seconds must be a positive number');
  const labels = parseLabels(options.labels);
  if (options.watch) {
    const refused = [options.promote && '--promote', options.environment && '--environment', options.deploymentName && '--deployment-name'].filter(Boolean);
    if (refused.length > 0) {
      throw new Error(
        `--watch updates the development deployment, which is not named or promoted by a push: drop ${refused.join(', ')} (promote it later with gantry promote MODEL development)`,
      );
    }
    return watchCommand(client, dir, { modelName: options.modelName, labels });
  }
  if (options.promote && options.environment && options.environment !== 'production') {
    throw new Error('--promote promotes to production; use --environment ENV alone for another environment');
  }
  const promoteTo = options.environment ?? (options.promote ? 'production' : undefined);
  const wait = options.wait || promoteTo !== undefined;
  const modelName = modelNameFor(dir, options.modelName);

  const archive = await packModelDirectory(dir);
  log(`packed ${archive.files.length} files (${(archive.bytes / 1024).toFixed(1)} KiB) from ${dir}`);
  const form = new FormData();
  form.append('options', JSON.stringify({ model_name: modelName, deployment_name: options.deploymentName, labels, environment: promoteTo }));
  form.append('archive', await fs.openAsBlob(archive.file), 'package.tar.gz');
  let deployment: DeploymentView;
  try {
    deployment = await client.request<DeploymentView>('POST', '/v1/deployments', form);
  } finally {
    fs.rmSync(path.dirname(archive.file), { recursive: true, force: true });
  }
  log(`pushed ${modelName} → deployment ${deployment.name} (id ${deployment.id}, model ${deployment.model_id})`);

  if (wait) {
    deployment = await waitForDeployment(client, deployment, { timeoutSeconds, quiet: json, log });
    if (FAILED.has(deployment.status)) {
      if (json) console.log(JSON.stringify(deployment, null, 2));
      else {
        console.error(`deployment ${deployment.name} ${deployment.status}: ${deployment.status_message ?? ''}`);
        const entries = await client.logs(deployment.model_id, deployment.id, 25).catch((error: ApiClientError) => {
          console.error(`(could not read the log: ${error.message})`);
          return [];
        });
        if (entries.length > 0) console.error('--- last log lines ---');
        for (const entry of entries) console.error(`${entry.ts} ${entry.source.padEnd(20)} ${entry.message}`);
      }
      return 1;
    }
    log(`deployment ${deployment.name} is ACTIVE${deployment.is_production ? ' and serves production' : ''}`);
    if (promoteTo && !deployment.environments.includes(promoteTo)) {
      const promotionId = await waitForPromotionStart(client, deployment, promoteTo, timeoutSeconds);
      log(`promoting to ${promoteTo}: promotion ${promotionId}`);
      const code = await followPromotion(client, deployment.model_id, promoteTo, promotionId);
      deployment = await client.getDeployment(deployment.model_id, deployment.id);
      if (json) console.log(JSON.stringify(deployment, null, 2));
      return code;
    }
    log(`  predict: npx gantry predict ${modelName} --deployment ${deployment.name} --data '{}'`);
  }
  if (json) console.log(JSON.stringify(deployment, null, 2));
  return 0;
}
