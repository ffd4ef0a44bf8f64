/** One deployment in the model page's table, with everything a user can do to it. */
import { useState } from 'preact/hooks';
import type { Labels } from '../../../src/shared/schemas';
import type { DeploymentView } from '../../../src/shared/views';
import { api, describeError } from '../api';
import { ErrorMessage, LabelChips, Replicas, StatusBadge, Time } from './badges';
import { AutoscalingForm } from './settings-forms';

/** Reads `key: value` lines (or `key=value`) into labels; throws on a line that is neither. */
export function parseLabelLines(text: string): Labels {
  const labels: Labels = {};
  for (const line of text
    .split(/[\n,]/)
    .map((l) => l.trim())
    .filter(Boolean)) {
    const match = /^([^:=\s]+)\s*[:=]\s*(.*)$/.exec(line);
    if (!match) throw new Error(`"${line}" is not key: value`);
    labels[match[1]!] = match[2]!;
  }
  return labels;
}

type Editing = 'none' | 'rename' | 'labels' | 'delete' | 'autoscaling';

/** A deployment row: rename inline, edit labels, deactivate or activate, delete (confirmed), promote. */
export function DeploymentRow({ modelId, deployment, environments }: { modelId: string; deployment: DeploymentView; environments: string[] }) {
  const [editing, setEditing] = useState<Editing>('none');
  const [name, setName] = useState(deployment.name);
  const [labels, setLabels] = useState('');
  const [target, setTarget] = useState(environments.find((env) => !deployment.environments.includes(env)) ?? 'production');
  const [error, setError] = useState<string | null>(null);
  const [busy, setBusy] = useState(false);
  const path = `/v1/models/${modelId}/deployments/${deployment.id}`;
  const development = deployment.is_development;

  /** Runs a call, shows its refusal as the API words it, and closes the editor when it worked. */
  const run = async (call: () => Promise<unknown>): Promise<void> => {
    setBusy(true);
    setError(null);
    try {
      await call();
      setEditing('none');
    } catch (failure) {
      setError(describeError(failure));
    } finally {
      setBusy(false);
    }
  };

  return (
    <>
      <tr data-deployment={deployment.name} data-deployment-id={deployment.id}>
        <th scope="row">
          {editing === 'rename' ? (
            <form
              class="inline"
              onSubmit={(e) => {
                e.preventDefault();
                void run(() => api('PATCH', path, { name: name.trim() }));
              }}
            >
              <label class="visually-hidden" for={`name-${deployment.id}`}>
                New name of {deployment.name}
              </label>
              <input id={`name-${deployment.id}`} value={name} onInput={(e) => setName(e.currentTarget.value)} autoFocus />
              <button type="submit" disabled={busy}>
                Save
              </button>
              <button type="button" class="quiet" onClick={() => setEditing('none')}>
                Cancel
              </button>
            </form>
          ) : (
            <span class="name">{deployment.name}</span>
          )}
          <div class="muted mono">{deployment.id}</div>
        </th>
        <td>
          <StatusBadge status={deployment.status} />
          {deployment.status_message && <div class="status-message">{deployment.status_message}</div>}
        </td>
        <td>
          {editing === 'labels' ? (
            <form
              class="inline"
              onSubmit={(e) => {
                e.preventDefault();
                void run(async () => api('PATCH', path, { labels: parseLabelLines(labels) }));
              }}
            >
              <label class="visually-hidden" for={`labels-${deployment.id}`}>
                Labels of {deployment.name}, one key: value per line
              </label>
              <textarea id={`labels-${deployment.id}`} rows={3} value={labels} onInput={(e) => setLabels(e.currentTarget.value)} autoFocus />
              <button type="submit" disabled={busy}>
                Save labels
              </button>
              <button type="button" class="quiet" onClick={() => setEditing('none')}>
                Cancel
              </button>
            </form>
          ) : (
            <LabelChips labels={deployment.labels} />
          )}
        </td>
        <td>
          <Replicas deployment={deployment} />
        </td>
        <td>{deployment.environments.length > 0 ? deployment.environments.join(', ') : <span class="muted">—</span>}</td>
        <td>
          <Time at={deployment.created_at} />
        </td>
        <td class="actions">
          {!development && (
            <button
              type="button"
              onClick={() => {
                setName(deployment.name);
                setEditing('rename');
              }}
              aria-label={`Rename ${deployment.name}`}
            >
              Rename
            </button>
          )}
          <button
            type="button"
            onClick={() => {
              setLabels(
                Object.entries(deployment.labels)
                  .map(([k, v]) => `${k}: ${v}`)
                  .join('\n'),
              );
              setEditing('labels');
            }}
            aria-label={`Edit the labels of ${deployment.name}`}
          >
            Labels
          </button>
          {deployment.status === 'INACTIVE' ? (
            <button type="button" disabled={busy} onClick={() => void run(() => api('POST', `${path}/activate`))} aria-label={`Activate ${deployment.name}`}>
              Activate
            </button>
          ) : (
            <button type="button" disabled={busy} onClick={() => void run(() => api('POST', `${path}/deactivate`))} aria-label={`Deactivate ${deployment.name}`}>
              Deactivate
            </button>
          )}
          <button type="button" onClick={() => setEditing('autoscaling')} aria-label={`Autoscaling of ${deployment.name}`}>
            Autoscaling
          </button>
          <button type="button" class="danger" onClick={() => setEditing('delete')} aria-label={`Delete ${deployment.name}`}>
            Delete
          </button>
          {!development && environments.length > 0 && (
            <form
              class="inline promote"
              onSubmit={(e) => {
                e.preventDefault();
                void run(() => api('POST', `/v1/models/${modelId}/environments/${target}/promote`, { deployment_id: deployment.id }));
              }}
            >
              <label class="visually-hidden" for={`promote-${deployment.id}`}>
                Environment to promote {deployment.name} to
              </label>
              <select id={`promote-${deployment.id}`} value={target} onChange={(e) => setTarget(e.currentTarget.value)}>
                {environments.map((env) => (
                  <option key={env} value={env}>
                    {env}
                  </option>
                ))}
              </select>
              <button type="submit" disabled={busy} aria-label={`Promote ${deployment.name}`}>
                Promote
              </button>
            </form>
          )}
        </td>
      </tr>
      {(editing === 'delete' || editing === 'autoscaling' || error) && (
        <tr class="row-detail">
          <td colSpan={7}>
            {editing === 'autoscaling' && <AutoscalingForm path={path} name={deployment.name} settings={deployment.autoscaling_settings} onClose={() => setEditing('none')} />}
            {editing === 'delete' && (
              <div class="confirm" role="group" aria-label={`Confirm deleting ${deployment.name}`}>
                Delete {deployment.name}? Its replicas stop and it cannot be served again; it stays in the usage log.{' '}
                <button type="button" class="danger" disabled={busy} onClick={() => void run(() => api('DELETE', path))}>
                  Delete {deployment.name}
                </button>{' '}
                <button
                  type="button"
                  class="quiet"
                  onClick={() => {
                    setEditing('none');
                    setError(null);
                  }}
                >
                  Keep it
                </button>
              </div>
            )}
            <ErrorMessage error={error} />
          </td>
        </tr>
      )}
    </>
  );
}
