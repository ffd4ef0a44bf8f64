/** Read-only commands: `gantry models`, `gantry deployments`, `gantry logs`. */
import type { ApiClient } from '../api-client';
import { formatLabels, table } from '../output';

/** `gantry models`: every model with its production deployment. */
export async function modelsCommand(client: ApiClient, options: { output?: string }): Promise<number> {
  const models = await client.listModels();
  if (options.output === 'json') {
    console.log(JSON.stringify(models, null, 2));
    return 0;
  }
  console.log(
    table(
      ['ID', 'NAME', 'DEPLOYMENTS', 'PRODUCTION', 'CREATED'],
      models.map((m) => [m.id, m.name, String(m.deployment_count), m.production_deployment_id ?? '-', m.created_at]),
    ),
  );
  return 0;
}

/** `gantry deployments MODEL`: a model's deployments, newest first. */
export async function deploymentsCommand(client: ApiClient, model: string, options: { output?: string; label?: string[] }): Promise<number> {
  const filters = (options.label ?? []).map((filter) => {
    const at = filter.indexOf('=');
    if (at <= 0) throw new Error(`--label takes key=value, not ${filter}`);
    return `${filter.slice(0, at)}:${filter.slice(at + 1)}`;
  });
  const deployments = await client.listDeployments(model, filters);
  if (options.output === 'json') {
    console.log(JSON.stringify(deployments, null, 2));
    return 0;
  }
  console.log(
    table(
      ['ID', 'NAME', 'STATUS', 'REPLICAS', 'ENVIRONMENTS', 'LABELS', 'CREATED'],
      deployments.map((d) => [d.id, d.name, d.status, `${d.replicas.ready}/${d.replicas.desired}`, d.environments.join(',') || '-', formatLabels(d.labels), d.created_at]),
    ),
  );
  return 0;
}

/** `gantry logs MODEL DEPLOYMENT`: the tail of the build and replica logs. */
export async function logsCommand(client: ApiClient, model: string, ref: string, options: { tail?: string; output?: string }): Promise<number> {
  const entries = await client.logs(model, ref, Number(options.tail ?? 200));
  if (options.output === 'json') console.log(JSON.stringify(entries, null, 2));
  else for (const entry of entries) console.log(`${entry.ts} ${entry.source.padEnd(20)} ${entry.message}`);
  return 0;
}
