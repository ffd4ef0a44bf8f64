/** Small pieces shown on many rows: a status badge, label chips, replica counts, times. */
import type { Labels } from '../../../src/shared/schemas';
import type { DeploymentView } from '../../../src/shared/views';

/** How a status looks: good, moving, stopped or bad. */
function toneOf(status: string): string {
  if (['ACTIVE', 'SUCCEEDED'].includes(status)) return 'good';
  if (['BUILD_FAILED', 'DEPLOY_FAILED', 'FAILED', 'UNHEALTHY'].includes(status)) return 'bad';
  if (['INACTIVE', 'SCALED_TO_ZERO', 'CANCELED', 'PAUSED'].includes(status)) return 'still';
  return 'moving';
}

/** A status as a coloured badge (the word is always there; colour only helps). */
export function StatusBadge({ status }: { status: string }) {
  return (
    <span class={`badge ${toneOf(status)}`} data-status={status}>
      {status}
    </span>
  );
}

/** Labels as `key: value` chips. */
export function LabelChips({ labels }: { labels: Labels }) {
  return <PairChips pairs={Object.entries(labels).map(([key, value]) => `${key}:${value}`)} />;
}

/** `key:value` pairs as chips. */
export function PairChips({ pairs }: { pairs: string[] }) {
  if (pairs.length === 0) return <span class="muted">—</span>;
  return (
    <ul class="chips" aria-label="labels">
      {pairs.map((pair) => (
        <li class="chip" key={pair}>
          {pair.replace(':', ': ')}
        </li>
      ))}
    </ul>
  );
}

/** Ready / desired replicas. */
export function Replicas({ deployment }: { deployment: DeploymentView }) {
  return (
    <span class="replicas" title={`${deployment.replicas.ready} ready, ${deployment.replicas.starting} starting, ${deployment.replicas.desired} desired`}>
      {deployment.replicas.ready}/{deployment.replicas.desired}
    </span>
  );
}

/** A timestamp in the reader's locale, with the exact time on hover. */
export function Time({ at }: { at: string }) {
  const date = new Date(at);
  return (
    <time dateTime={at} title={at}>
      {date.toLocaleString()}
    </time>
  );
}

/** An error as the API (or the page) words it, announced to screen readers; nothing when there is none. */
export function ErrorMessage({ error }: { error: string | null }) {
  if (!error) return null;
  return (
    <p class="error" role="alert">
      {error}
    </p>
  );
}
