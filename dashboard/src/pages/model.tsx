/** A model's page: its deployments, its environments with their live promotions, and its audit log. */
import { useState } from 'preact/hooks';
import type { ModelDetail } from '../../../src/shared/views';
import type { ApiError } from '../api';
import { api, describeError } from '../api';
import { Time } from '../components/badges';
import { DeploymentRow } from '../components/deployment-row';
import { EnvironmentCard } from '../components/environment-card';
import { followModel } from '../live';
import { LiveIndicator, useLive } from '../use-live';

/** The form that creates a custom environment. */
function NewEnvironment({ modelId }: { modelId: string }) {
  const [name, setName] = useState('');
  const [error, setError] = useState<string | null>(null);
  const submit = async (event: Event): Promise<void> => {
    event.preventDefault();
    setError(null);
    try {
      await api('POST', `/v1/models/${modelId}/environments`, { name: name.trim() });
      setName('');
    } catch (failure) {
      setError(describeError(failure));
    }
  };
  return (
    <form class="inline new-environment" onSubmit={submit}>
      <label for="new-environment">New environment</label>
      <input id="new-environment" placeholder="staging" value={name} onInput={(e) => setName(e.currentTarget.value)} />
      <button type="submit" disabled={name.trim() === ''}>
        Create
      </button>
      {error && (
        <p class="error" role="alert">
          {error}
        </p>
      )}
    </form>
  );
}

/** The model page. */
export function ModelPage({ modelId, onExpired }: { modelId: string; onExpired(): void }) {
  const [gone, setGone] = useState<string | null>(null);
  const { data, state } = useLive<ModelDetail>((handlers) => followModel(modelId, handlers), [modelId], (error: ApiError) => (error.status === 401 ? onExpired() : setGone(error.message)));
  if (gone) {
    return (
      <p class="error" role="alert">
        {gone}. <a href="#/">Back to the models</a>
      </p>
    );
  }
  if (!data) return <LiveIndicator state={state} />;
  const environments = data.environments.map((env) => env.name);
  return (
    <>
      <div class="title-row">
        <h1>
          {data.model.name} <span class="muted mono">{data.model.id}</span>
        </h1>
        <LiveIndicator state={state} />
      </div>

      <section aria-labelledby="deployments-title">
        <h2 id="deployments-title">Deployments</h2>
        <div class="table-wrap">
          <table class="deployments">
            <thead>
              <tr>
                <th scope="col">Name</th>
                <th scope="col">Status</th>
                <th scope="col">Labels</th>
                <th scope="col">Replicas</th>
                <th scope="col">Serves</th>
                <th scope="col">Created</th>
                <th scope="col">Actions</th>
              </tr>
            </thead>
            <tbody>
              {data.deployments.map((deployment) => (
                <DeploymentRow key={deployment.id} modelId={data.model.id} deployment={deployment} environments={environments} />
              ))}
            </tbody>
          </table>
        </div>
      </section>

      <section aria-labelledby="environments-title">
        <h2 id="environments-title">Environments</h2>
        <div class="environments">
          {data.environments.map((environment) => (
            <EnvironmentCard key={environment.name} modelId={data.model.id} environment={environment} />
          ))}
        </div>
        <NewEnvironment modelId={data.model.id} />
      </section>

      <section aria-labelledby="audit-title">
        <h2 id="audit-title">Audit log</h2>
        <div class="table-wrap">
          <table class="audit">
            <thead>
              <tr>
                <th scope="col">When</th>
                <th scope="col">Who</th>
                <th scope="col">What</th>
                <th scope="col">On</th>
                <th scope="col">Details</th>
              </tr>
            </thead>
            <tbody>
              {data.audit_logs.map((entry) => (
                <tr key={entry.id}>
                  <td>
                    <Time at={entry.at} />
                  </td>
                  <td>{entry.actor}</td>
                  <td>{entry.action}</td>
                  <td>{entry.target ?? ''}</td>
                  <td class="mono details">{JSON.stringify(entry.details)}</td>
                </tr>
              ))}
            </tbody>
          </table>
        </div>
      </section>
    </>
  );
}
