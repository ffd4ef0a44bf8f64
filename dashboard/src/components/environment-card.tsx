/** One environment: what it serves, and its promotion in flight, live and steerable. */
import { useEffect, useState } from 'preact/hooks';
import type { PromotionAction, PromotionSettings } from '../../../src/shared/schemas';
import { workflowIds } from '../../../src/shared/constants';
import type { EnvironmentView, PromotionView, TemporalUiLink } from '../../../src/shared/views';
import { api, describeError } from '../api';
import { ErrorMessage, StatusBadge } from './badges';
import { PromotionSettingsForm } from './settings-forms';

/** The buttons of a promotion, in the order a user reads them. */
const ACTIONS: { action: PromotionAction; label: string; danger?: boolean }[] = [
  { action: 'pause', label: 'Pause' },
  { action: 'resume', label: 'Resume' },
  { action: 'cancel', label: 'Cancel' },
  { action: 'force_cancel', label: 'Force cancel', danger: true },
  { action: 'force_roll_forward', label: 'Force roll forward', danger: true },
];

/** What happens to the previous deployment once a promotion succeeds. */
const CLEANUP_WORDS = { SCALE_TO_ZERO: 'scaled to zero', KEEP: 'kept running', DEACTIVATE: 'deactivated' } as const;

/** The settings in one sentence. */
function describeSettings(settings: PromotionSettings): string {
  const cleanup = `afterwards the previous deployment is ${CLEANUP_WORDS[settings.promotion_cleanup_strategy]}`;
  if (!settings.rolling_deploy) return `Instant promotions; ${cleanup}.`;
  if (settings.ramp_up_while_promoting) return `Canary promotions: traffic in 10 stages over ${settings.ramp_up_duration_seconds} s; ${cleanup}.`;
  const config = settings.rolling_deploy_config;
  const mode = config.max_surge_percent > 0 ? `${config.max_surge_percent}% surge` : `${config.max_unavailable_percent}% unavailable`;
  return `Rolling promotions (${mode}, ${config.stabilization_time_seconds} s per step); ${cleanup}.`;
}

/** "3 min 12 s" since a moment, ticking every second. */
function useElapsed(since: string): string {
  const [now, setNow] = useState(Date.now());
  useEffect(() => {
    const timer = setInterval(() => setNow(Date.now()), 1000);
    return () => clearInterval(timer);
  }, []);
  const seconds = Math.max(0, Math.round((now - Date.parse(since)) / 1000));
  return seconds < 60 ? `${seconds} s` : `${Math.floor(seconds / 60)} min ${seconds % 60} s`;
}

/** The traffic split as a bar: the candidate's share against the previous deployment's. */
function TrafficBar({ percent }: { percent: number }) {
  return (
    <div
      class="traffic"
      role="meter"
      aria-label="Traffic to the new deployment"
      aria-valuemin={0}
      aria-valuemax={100}
      aria-valuenow={percent}
      aria-valuetext={`${percent}% new, ${100 - percent}% previous`}
    >
      <div class="candidate" style={{ width: `${percent}%` }} />
      <span class="traffic-label">
        {percent}% new · {100 - percent}% previous
      </span>
    </div>
  );
}

/** A promotion in flight with its controls. */
function LivePromotion({ modelId, environment, temporalUi }: { modelId: string; environment: EnvironmentView; temporalUi: TemporalUiLink | null }) {
  const promotion = environment.in_progress_promotion as PromotionView;
  const [error, setError] = useState<string | null>(null);
  const [sending, setSending] = useState<PromotionAction | null>(null);
  const elapsed = useElapsed(promotion.started_at);
  const candidate = environment.candidate_deployment;
  const previous = environment.current_deployment;

  const act = async (action: PromotionAction): Promise<void> => {
    setSending(action);
    setError(null);
    try {
      await api('POST', `/v1/models/${modelId}/environments/${environment.name}/${action}_promotion`);
    } catch (failure) {
      setError(describeError(failure));
    } finally {
      setSending(null);
    }
  };

  return (
    <div class="promotion" data-promotion={promotion.id} data-status={promotion.status}>
      <div class="promotion-head">
        <StatusBadge status={promotion.status} />
        <span>
          step {promotion.step}/{promotion.total_steps}
        </span>
        {promotion.pending_action && <span class="pending">pending: {promotion.pending_action}</span>}
        <span class="muted">for {elapsed}</span>
        {temporalUi && (
          <a
            href={`${temporalUi.url}/namespaces/${encodeURIComponent(temporalUi.namespace)}/workflows/${encodeURIComponent(workflowIds.promotion(modelId, environment.name))}`}
            target="_blank"
            rel="noreferrer"
          >
            workflow in Temporal
          </a>
        )}
      </div>
      <TrafficBar percent={promotion.percent_traffic_to_new_version} />
      <dl class="sides">
        <div>
          <dt>New: {candidate?.name ?? promotion.candidate_deployment_id}</dt>
          <dd>
            {candidate?.replicas.ready ?? 0} ready of {promotion.candidate_replicas}
          </dd>
        </div>
        <div>
          <dt>Previous: {previous?.name ?? promotion.previous_deployment_id ?? 'none'}</dt>
          <dd>
            {previous?.replicas.ready ?? 0} ready of {promotion.previous_replicas}
          </dd>
        </div>
      </dl>
      {promotion.message && <p class="status-message">{promotion.message}</p>}
      <div class="buttons" role="group" aria-label={`Control the promotion of ${environment.name}`}>
        {ACTIONS.map(({ action, label, danger }) => (
          <button
            key={action}
            type="button"
            class={danger ? 'danger' : undefined}
            data-action={action}
            disabled={sending !== null || !promotion.allowed_actions.includes(action)}
            onClick={() => void act(action)}
          >
            {sending === action ? `${label}…` : label}
          </button>
        ))}
      </div>
      <ErrorMessage error={error} />
    </div>
  );
}

/** An environment card. */
export function EnvironmentCard({ modelId, environment, temporalUi }: { modelId: string; environment: EnvironmentView; temporalUi: TemporalUiLink | null }) {
  const [error, setError] = useState<string | null>(null);
  const [confirming, setConfirming] = useState(false);
  const [editing, setEditing] = useState(false);
  const current = environment.current_deployment;
  const remove = async (): Promise<void> => {
    setError(null);
    try {
      await api('DELETE', `/v1/models/${modelId}/environments/${environment.name}`);
    } catch (failure) {
      setError(describeError(failure));
    }
  };
  return (
    <article class="environment" data-environment={environment.name} aria-labelledby={`env-${environment.name}`}>
      <h3 id={`env-${environment.name}`}>{environment.name}</h3>
      <p>
        Serves{' '}
        {current ? (
          <>
            <strong>{current.name}</strong> <StatusBadge status={current.status} />
          </>
        ) : (
          <span class="muted">nothing yet</span>
        )}
      </p>
      {editing ? (
        <PromotionSettingsForm modelId={modelId} environment={environment.name} settings={environment.promotion_settings} onClose={() => setEditing(false)} />
      ) : (
        <button type="button" class="quiet" onClick={() => setEditing(true)} aria-label={`Edit the promotion settings of ${environment.name}`}>
          Promotion settings
        </button>
      )}
      <p class="muted settings">{describeSettings(environment.promotion_settings)}</p>
      {environment.in_progress_promotion ? <LivePromotion modelId={modelId} environment={environment} temporalUi={temporalUi} /> : <p class="muted">No promotion in flight.</p>}
      {environment.name !== 'production' &&
        (confirming ? (
          <div class="confirm" role="group" aria-label={`Confirm deleting the environment ${environment.name}`}>
            Delete the environment {environment.name}?{' '}
            <button type="button" class="danger" onClick={() => void remove()}>
              Delete {environment.name}
            </button>{' '}
            <button type="button" class="quiet" onClick={() => setConfirming(false)}>
              Keep it
            </button>
          </div>
        ) : (
          <button type="button" class="quiet" onClick={() => setConfirming(true)}>
            Delete environment
          </button>
        ))}
      <ErrorMessage error={error} />
    </article>
  );
}
