/** The development deployment: its revision, how its last update went, and its URL. */
import type { DeploymentView } from '../../../src/shared/views';
import { StatusBadge, Time } from './badges';

/** The development panel (or how to create one). */
export function DevelopmentPanel({ modelId, modelName, development }: { modelId: string; modelName: string; development: DeploymentView | undefined }) {
  if (!development) {
    return (
      <p class="muted">
        No development deployment. Start one with <code>npx gantry push &lt;dir&gt; --watch --model-name {modelName}</code>: every saved change is live-reloaded.
      </p>
    );
  }
  const failed = development.status_message !== null;
  return (
    <dl class="development" data-deployment-id={development.id}>
      <div>
        <dt>Status</dt>
        <dd>
          <StatusBadge status={development.status} />
        </dd>
      </div>
      <div>
        <dt>Revision</dt>
        <dd>{development.revision}</dd>
      </div>
      <div>
        <dt>Last update</dt>
        <dd>
          {failed ? <span class="error">{development.status_message}</span> : <span>revision {development.revision} serves</span>} (<Time at={development.updated_at} />)
        </dd>
      </div>
      <div>
        <dt>URL (on the gateway)</dt>
        <dd>
          <code>/models/{modelId}/development/predict</code>
        </dd>
      </div>
    </dl>
  );
}
