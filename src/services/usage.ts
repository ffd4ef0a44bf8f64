/** The usage log: replica-seconds and requests per deployment per hour, deleted deployments included. */
import type { DeploymentUsage, UsageReport } from '../shared/views';
import type { Store } from '../store/store';

const round = (n: number): number => Math.round(n * 10) / 10;

/** Builds usage reports from the store's per-minute samples. */
export class UsageService {
  constructor(private readonly store: Store) {}

  /** Usage between `start` and `end`, per deployment, most used first. */
  async report(range: { start: Date; end: Date }): Promise<UsageReport> {
    const samples = await this.store.listUsage({ start: range.start.toISOString(), end: range.end.toISOString() });
    const byDeployment = new Map<string, Map<string, { replica_seconds: number; requests: number }>>();
    for (const sample of samples) {
      const hour = `${sample.minute.slice(0, 13)}:00:00.000Z`;
      const hours = byDeployment.get(sample.deployment_id) ?? new Map();
      const bucket = hours.get(hour) ?? { replica_seconds: 0, requests: 0 };
      bucket.replica_seconds += sample.replica_seconds;
      bucket.requests += sample.requests;
      hours.set(hour, bucket);
      byDeployment.set(sample.deployment_id, hours);
    }
    const modelNames = new Map<string, string>();
    const deployments: DeploymentUsage[] = [];
    for (const [deploymentId, hours] of byDeployment) {
      const deployment = await this.store.getDeployment(deploymentId);
      if (!deployment) continue; // samples of a push that never became a deployment
      if (!modelNames.has(deployment.model_id)) modelNames.set(deployment.model_id, (await this.store.getModel(deployment.model_id))?.name ?? deployment.model_id);
      const rows = [...hours.entries()].sort(([a], [b]) => a.localeCompare(b)).map(([hour, v]) => ({ hour, replica_seconds: round(v.replica_seconds), requests: v.requests }));
      deployments.push({
        deployment_id: deployment.id,
        deployment_name: deployment.name,
        model_id: deployment.model_id,
        model_name: modelNames.get(deployment.model_id)!,
        labels: deployment.labels,
        deleted_at: deployment.deleted_at,
        replica_seconds: round(rows.reduce((n, r) => n + r.replica_seconds, 0)),
        requests: rows.reduce((n, r) => n + r.requests, 0),
        hours: rows,
      });
    }
    deployments.sort((a, b) => b.replica_seconds - a.replica_seconds || a.deployment_id.localeCompare(b.deployment_id));
    return { start: range.start.toISOString(), end: range.end.toISOString(), deployments };
  }
}
