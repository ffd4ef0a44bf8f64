/** A model's page: its deployments, its environments with their live promotions, and its audit log. */
import { useState } from 'preact/hooks';
import type { AuditSource, ModelDetail } from '../../../src/shared/views';
import type { ApiError } from '../api';
import { api, describeError } from '../api';
import { ErrorMessage, Time } from '../components/badges';
import { DeploymentRow } from '../components/deployment-row';
import { DevelopmentPanel } from '../components/development-panel';
import { EnvironmentCard } from '../components/environment-card';
import { LogTail } from '../components/log-tail';
import { Playground } from '../components/playground';
import { UsageChart } from '../components/usage-chart';
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
      <ErrorMessage error={error} />
    </form>
  );
}

/** An audit entry's source in words. */
const SOURCE_WORDS: Record<AuditSource, string> = {
  api: 'API',
  cli: 'CLI',
  dashboard: 'dashboard',
  temporal: 'Temporal',
  repair: 'repair loop',
  gantry: 'Gantry',
};

/** Scrolls to a section without touching the hash (the hash is the page's route). */
function jump(event: MouseEvent): void {
  event.preventDefault();
  const id = (event.currentTarget as HTMLAnchorElement).getAttribute('href')!.slice(1);
  const target = document.getElementById(id);
  target?.scrollIntoView({ behavior: 'smooth' });
  target?.setAttribute('tabindex', '-1');
  target?.focus({ preventScroll: true });
}

/** The model page. */
export function ModelPage({ modelId, onExpired }: { modelId: string; onExpired(): void }) {
  const [gone, setGone] = useState<string | null>(null);
  const { data, state } = useLive<ModelDetail>(
    (handlers) => followModel(modelId, handlers),
    [modelId],
    (error: ApiError) => (error.status === 401 ? onExpired() : setGone(error.message)),
  );
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
      <nav class="sections" aria-label="Sections of this model">
        <a href="#deployments-title" onClick={jump}>
          Deployments
        </a>{' '}
        <a href="#environments-title" onClick={jump}>
          Environments
        </a>{' '}
        <a href="#development-title" onClick={jump}>
          Development
        </a>{' '}
        <a href="#playground-title" onClick={jump}>
          Predict
        </a>{' '}
        <a href="#logs-title" onClick={jump}>
          Logs
        </a>{' '}
        <a href="#usage-title" onClick={jump}>
          Usage
        </a>{' '}
        <a href="#audit-title" onClick={jump}>
          Audit log
        </a>
      </nav>

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
            <EnvironmentCard key={environment.name} modelId={data.model.id} environment={environment} temporalUi={data.temporal_ui} />
          ))}
        </div>
        <NewEnvironment modelId={data.model.id} />
      </section>

      <section aria-labelledby="development-title">
        <h2 id="development-title">Development</h2>
        <DevelopmentPanel modelId={data.model.id} modelName={data.model.name} development={data.deployments.find((d) => d.is_development)} />
      </section>

      <section aria-labelledby="playground-title">
        <h2 id="playground-title">Predict</h2>
        <Playground modelId={data.model.id} deployments={data.deployments} />
      </section>

      <section aria-labelledby="logs-title">
        <h2 id="logs-title">Logs</h2>
        <LogTail modelId={data.model.id} deployments={data.deployments} />
      </section>

      <section aria-labelledby="usage-title">
        <h2 id="usage-title">Usage</h2>
        <UsageChart modelId={data.model.id} />
      </section>

      <section aria-labelledby="audit-title">
        <h2 id="audit-title">Audit log</h2>
        <div class="table-wrap">
          <table class="audit">
            <thead>
              <tr>
                <th scope="col">When</th>
                <th scope="col">Who</th>
                <th scope="col">From</th>
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
                  <td>{SOURCE_WORDS[entry.source] ?? entry.source}</td>
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
