/** Waiting for a deployment to settle, with progress lines. */
import type { ApiClient } from './api-client';
import { elapsed } from './output';
import type { DeploymentView } from '../shared/views';

/** The statuses a deploy ends in when it fails. */
export const FAILED = new Set(['BUILD_FAILED', 'DEPLOY_FAILED']);

/** Polls the deployment until it is ACTIVE or failed, printing each status change. */
export async function waitForDeployment(
  client: ApiClient,
  deployment: DeploymentView,
  options: { timeoutSeconds: number; quiet: boolean; log: (line: string) => void },
): Promise<DeploymentView> {
  const start = Date.now();
  let current = deployment;
  let shown = '';
  for (;;) {
    if (current.status !== shown && !options.quiet) {
      options.log(`  ${elapsed(start).padStart(6)}  ${current.status}${current.status_message ? `: ${current.status_message}` : ''}`);
      shown = current.status;
    }
    if (current.status === 'ACTIVE' || FAILED.has(current.status)) return current;
    if (Date.now() - start > options.timeoutSeconds * 1000) {
      throw new Error(`deployment ${current.name} is still ${current.status} after ${options.timeoutSeconds} s`);
    }
    await new Promise((resolve) => setTimeout(resolve, 500));
    current = await client.getDeployment(current.model_id, current.id);
  }
}
