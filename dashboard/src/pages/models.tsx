/** The models page: every model with its production and development deployments, searchable and filtered by label. */
import { useMemo, useState } from 'preact/hooks';
import type { DeploymentView, ModelOverview } from '../../../src/shared/views';
import { PairChips, Replicas, StatusBadge, Time } from '../components/badges';
import { followModels } from '../live';
import { modelHref } from '../route';
import { LiveIndicator, useLive } from '../use-live';

/** `key:value` for every label any deployment of the model has. */
function labelPairs(overview: ModelOverview): string[] {
  return [...new Set(overview.deployments.flatMap((d) => Object.entries(d.labels).map(([k, v]) => `${k}:${v}`)))].sort();
}

/** A deployment cell: its name, status and replicas, or a dash. */
function DeploymentCell({ deployment }: { deployment: DeploymentView | undefined }) {
  if (!deployment) return <span class="muted">—</span>;
  return (
    <span class="deployment-cell">
      <span class="name">{deployment.name}</span> <StatusBadge status={deployment.status} /> <Replicas deployment={deployment} />
    </span>
  );
}

/** The models page. */
export function ModelsPage({ onExpired }: { onExpired(): void }) {
  const { data, state } = useLive(followModels, [], onExpired);
  const [search, setSearch] = useState('');
  const [label, setLabel] = useState('');
  const models = data?.models ?? [];
  const allLabels = useMemo(() => [...new Set(models.flatMap(labelPairs))].sort(), [models]);
  const shown = models.filter(
    (overview) =>
      (search === '' || overview.model.name.toLowerCase().includes(search.toLowerCase()) || overview.model.id.includes(search)) &&
      (label === '' || labelPairs(overview).includes(label)),
  );

  return (
    <section aria-labelledby="models-title">
      <div class="title-row">
        <h1 id="models-title">Models</h1>
        <LiveIndicator state={state} />
      </div>
      <div class="filters">
        <label>
          Search
          <input type="search" placeholder="model name or id" value={search} onInput={(e) => setSearch(e.currentTarget.value)} />
        </label>
        <label>
          Label
          <select value={label} onChange={(e) => setLabel(e.currentTarget.value)}>
            <option value="">any label</option>
            {allLabels.map((pair) => (
              <option key={pair} value={pair}>
                {pair}
              </option>
            ))}
          </select>
        </label>
      </div>
      {data && models.length === 0 && (
        <p class="empty">
          No models yet. Push one: <code>npx gantry push examples/echo --wait</code>
        </p>
      )}
      {shown.length > 0 && (
        <div class="table-wrap">
          <table class="models">
            <thead>
              <tr>
                <th scope="col">Model</th>
                <th scope="col">Production</th>
                <th scope="col">Development</th>
                <th scope="col">Deployments</th>
                <th scope="col">Labels</th>
                <th scope="col">Created</th>
              </tr>
            </thead>
            <tbody>
              {shown.map((overview) => {
                const production = overview.deployments.find((d) => d.id === overview.model.production_deployment_id);
                const development = overview.deployments.find((d) => d.is_development);
                return (
                  <tr key={overview.model.id} data-model={overview.model.name}>
                    <th scope="row">
                      <a href={modelHref(overview.model.id)}>{overview.model.name}</a>
                      <div class="muted mono">{overview.model.id}</div>
                    </th>
                    <td data-column="production">
                      <DeploymentCell deployment={production} />
                    </td>
                    <td data-column="development">
                      <DeploymentCell deployment={development} />
                    </td>
                    <td>{overview.model.deployment_count}</td>
                    <td>
                      <PairChips pairs={labelPairs(overview)} />
                    </td>
                    <td>
                      <Time at={overview.model.created_at} />
                    </td>
                  </tr>
                );
              })}
            </tbody>
          </table>
        </div>
      )}
      {data && models.length > 0 && shown.length === 0 && <p class="empty">No model matches.</p>}
    </section>
  );
}
