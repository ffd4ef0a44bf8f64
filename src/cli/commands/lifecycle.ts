/** `gantry deployments update|rename|deactivate|activate|delete` and `gantry usage`. */
import { labelsSchema } from '../../shared/schemas';
import type { ApiClient } from '../api-client';
import { formatLabels, table } from '../output';
import type { UsageReport, DeploymentView } from '../../shared/views';

const deploymentPath = (model: string, ref: string): string => `/v1/models/${encodeURIComponent(model)}/deployments/${encodeURIComponent(ref)}`;

/** `gantry deployments update MODEL REF [--name N] [--labels JSON]` (and `rename MODEL REF NAME`). */
export async function updateDeploymentCommand(client: ApiClient, model: string, ref: string, options: { name?: string; labels?: string; output?: string }): Promise<number> {
  let labels: Record<string, string> | undefined;
  if (options.labels !== undefined) {
    let value: unknown;
    try {
      value = JSON.parse(options.labels);
    } catch {
      throw new Error(`--labels must be a JSON object such as '{"team":"ml"}'`);
    }
    const parsed = labelsSchema.safeParse(value);
    if (!parsed.success) throw new Error(`--labels: ${parsed.error.issues.map((i) => i.message).join('; ')}`);
    labels = parsed.data;
  }
  if (options.name === undefined && labels === undefined) throw new Error('give --name, --labels or both');
  const deployment = await client.request<DeploymentView>('PATCH', deploymentPath(model, ref), { name: options.name, labels });
  if (options.output === 'json') console.log(JSON.stringify(deployment, null, 2));
  else console.log(`deployment ${deployment.id}: name ${deployment.name}, labels ${formatLabels(deployment.labels)}`);
  return 0;
}

/** `gantry deployments deactivate|activate MODEL REF [--wait]`. */
export async function switchDeploymentCommand(
  client: ApiClient,
  action: 'deactivate' | 'activate',
  model: string,
  ref: string,
  options: { wait?: boolean; output?: string },
): Promise<number> {
  let deployment = await client.request<DeploymentView>('POST', `${deploymentPath(model, ref)}/${action}`);
  const target = action === 'deactivate' ? 'INACTIVE' : 'ACTIVE';
  if (options.wait) {
    const deadline = Date.now() + 300_000;
    while (deployment.status !== target) {
      if (Date.now() > deadline) throw new Error(`deployment ${deployment.name} is still ${deployment.status}`);
      await new Promise((resolve) => setTimeout(resolve, 300));
      deployment = await client.getDeployment(model, deployment.id);
    }
  }
  if (options.output === 'json') console.log(JSON.stringify(deployment, null, 2));
  else console.log(`deployment ${deployment.name} (${deployment.id}) is ${deployment.status}`);
  return 0;
}

/** `gantry deployments delete MODEL REF`. */
export async function deleteDeploymentCommand(client: ApiClient, model: string, ref: string): Promise<number> {
  await client.request('DELETE', deploymentPath(model, ref));
  console.log(`deleted deployment ${ref} of ${model} (its usage stays in gantry usage)`);
  return 0;
}

/** `gantry usage [--start ISO] [--end ISO]`: replica-hours and requests per deployment. */
export async function usageCommand(client: ApiClient, options: { start?: string; end?: string; output?: string }): Promise<number> {
  const query = new URLSearchParams();
  if (options.start) query.set('start', options.start);
  if (options.end) query.set('end', options.end);
  const report = await client.request<UsageReport>('GET', `/v1/usage${query.size ? `?${query}` : ''}`);
  if (options.output === 'json') {
    console.log(JSON.stringify(report, null, 2));
    return 0;
  }
  console.log(`usage from ${report.start} to ${report.end}`);
  console.log(
    table(
      ['MODEL', 'DEPLOYMENT', 'ID', 'LABELS', 'DELETED', 'REPLICA-HOURS', 'REQUESTS'],
      report.deployments.map((d) => [
        d.model_name,
        d.deployment_name,
        d.deployment_id,
        formatLabels(d.labels),
        d.deleted_at ?? '-',
        (d.replica_seconds / 3600).toFixed(3),
        String(d.requests),
      ]),
    ),
  );
  return 0;
}
