/** `gantry environments`, `gantry promote` and `gantry rollout`: environments and their promotions. */
import type { PromotionSettingsPatch } from '../../shared/schemas';
import type { ApiClient } from '../api-client';
import { waitForDeployment } from '../waits';
import { table } from '../output';
import type { EnvironmentView, PromotionView, DeploymentView } from '../../shared/views';

const modelPath = (model: string): string => `/v1/models/${encodeURIComponent(model)}`;
const envPath = (model: string, env: string): string => `${modelPath(model)}/environments/${encodeURIComponent(env)}`;

/** Flags of `gantry environments create|update` for promotion settings. */
export interface SettingsFlags {
  rolling?: boolean;
  maxSurgePercent?: string;
  maxUnavailablePercent?: string;
  stabilizationSeconds?: string;
  cleanup?: string;
  timeoutSeconds?: string;
}

/** Turns settings flags into a partial promotion_settings (the API checks it). */
export function settingsFromFlags(flags: SettingsFlags): PromotionSettingsPatch | undefined {
  const int = (value: string | undefined, name: string): number | undefined => {
    if (value === undefined) return undefined;
    const n = Number(value);
    if (!Number.isInteger(n)) throw new Error(`${name} must be a whole number`);
    return n;
  };
  const rolling = {
    max_surge_percent: int(flags.maxSurgePercent, '--max-surge-percent'),
    max_unavailable_percent: int(flags.maxUnavailablePercent, '--max-unavailable-percent'),
    stabilization_time_seconds: int(flags.stabilizationSeconds, '--stabilization-seconds'),
  };
  // Naming one mode switches the other off, so `--max-unavailable-percent 25` alone is valid.
  if (rolling.max_unavailable_percent && rolling.max_surge_percent === undefined) rolling.max_surge_percent = 0;
  if (rolling.max_surge_percent && rolling.max_unavailable_percent === undefined) rolling.max_unavailable_percent = 0;
  const settings: PromotionSettingsPatch = {
    rolling_deploy: flags.rolling,
    promotion_cleanup_strategy: flags.cleanup as PromotionSettingsPatch['promotion_cleanup_strategy'],
    promotion_timeout_seconds: int(flags.timeoutSeconds, '--timeout-seconds'),
  };
  if (Object.values(rolling).some((v) => v !== undefined)) settings.rolling_deploy_config = JSON.parse(JSON.stringify(rolling));
  const defined = JSON.parse(JSON.stringify(settings)) as PromotionSettingsPatch;
  return Object.keys(defined).length > 0 ? defined : undefined;
}

function describeSettings(env: EnvironmentView): string {
  const s = env.promotion_settings;
  if (s.ramp_up_while_promoting) return `canary (deprecated) over ${s.ramp_up_duration_seconds}s, cleanup ${s.promotion_cleanup_strategy}`;
  if (!s.rolling_deploy) return `instant, cleanup ${s.promotion_cleanup_strategy}`;
  const c = s.rolling_deploy_config;
  const mode = c.max_surge_percent > 0 ? `surge ${c.max_surge_percent}%` : `unavailable ${c.max_unavailable_percent}%`;
  return `rolling ${mode}, stabilize ${c.stabilization_time_seconds}s, cleanup ${s.promotion_cleanup_strategy}`;
}

/** `gantry environments MODEL`. */
export async function environmentsCommand(client: ApiClient, model: string, options: { output?: string }): Promise<number> {
  const { environments } = await client.request<{ environments: EnvironmentView[] }>('GET', `${modelPath(model)}/environments`);
  if (options.output === 'json') {
    console.log(JSON.stringify(environments, null, 2));
    return 0;
  }
  console.log(
    table(
      ['NAME', 'CURRENT', 'PROMOTION', 'SETTINGS'],
      environments.map((env) => [
        env.name,
        env.current_deployment ? `${env.current_deployment.name} (${env.current_deployment.id})` : '-',
        env.in_progress_promotion
          ? `${env.in_progress_promotion.status} ${env.in_progress_promotion.percent_traffic_to_new_version}% → ${env.candidate_deployment?.name ?? env.in_progress_promotion.candidate_deployment_id}`
          : '-',
        describeSettings(env),
      ]),
    ),
  );
  return 0;
}

/** `gantry environments create MODEL NAME` and `gantry environments update MODEL NAME`. */
export async function writeEnvironmentCommand(
  client: ApiClient,
  mode: 'create' | 'update',
  model: string,
  name: string,
  flags: SettingsFlags & { output?: string },
): Promise<number> {
  const settings = settingsFromFlags(flags);
  const env =
    mode === 'create'
      ? await client.request<EnvironmentView>('POST', `${modelPath(model)}/environments`, { name, promotion_settings: settings })
      : await client.request<EnvironmentView>('PATCH', envPath(model, name), { promotion_settings: settings ?? {} });
  if (flags.output === 'json') console.log(JSON.stringify(env, null, 2));
  else console.log(`${mode === 'create' ? 'created' : 'updated'} environment ${env.name}: ${describeSettings(env)}`);
  return 0;
}

/** `gantry environments delete MODEL NAME`. */
export async function deleteEnvironmentCommand(client: ApiClient, model: string, name: string): Promise<number> {
  await client.request('DELETE', envPath(model, name));
  console.log(`deleted environment ${name}`);
  return 0;
}

const BAR_WIDTH = 30;

/** One line of rollout progress: a bar of traffic and the replicas of each side. */
export function progressLine(p: PromotionView, ready?: { candidate?: number; previous?: number }): string {
  const filled = Math.round((p.percent_traffic_to_new_version / 100) * BAR_WIDTH);
  const bar = `[${'#'.repeat(filled)}${'.'.repeat(BAR_WIDTH - filled)}]`;
  const side = (desired: number, readyCount: number | undefined): string => (readyCount === undefined ? `${desired}` : `${readyCount}/${desired}`);
  return (
    `${bar} ${String(p.percent_traffic_to_new_version).padStart(3)}% new  ${p.status.padEnd(12)} step ${p.step}/${p.total_steps}  ` +
    `candidate ${side(p.candidate_replicas, ready?.candidate)}  previous ${side(p.previous_replicas, ready?.previous)}` +
    (p.pending_action ? `  (${p.pending_action} pending)` : '')
  );
}

const ENDED = new Set(['SUCCEEDED', 'FAILED', 'CANCELED']);

/** How long `--follow` waits for a promotion to be recorded by its workflow (the worker may be restarting). */
const RECORD_WAIT_MS = 120_000;

/** Follows a promotion until it ends, drawing progress; exit code 0 only for SUCCEEDED. */
export async function followPromotion(client: ApiClient, model: string, env: string, promotionId: string): Promise<number> {
  const tty = process.stdout.isTTY;
  let last = '';
  const recordedBy = Date.now() + RECORD_WAIT_MS;
  for (;;) {
    const p = await client.request<PromotionView>('GET', `${envPath(model, env)}/promotion`);
    if (p.id !== promotionId) {
      // The promotion records itself when the worker picks it up: until then the environment's
      // latest is an earlier one that has ended.
      if (!p.ended_at || Date.now() > recordedBy) throw new Error(`promotion ${promotionId} is no longer the environment's latest`);
      if (!last) console.log(`waiting for the worker to start promotion ${promotionId}…`);
      last = last || 'waiting';
      await new Promise((resolve) => setTimeout(resolve, 500));
      continue;
    }
    const ready = async (id: string | null): Promise<number | undefined> => (id ? (await client.getDeployment(model, id).catch(() => undefined))?.replicas.ready : undefined);
    const line = progressLine(p, { candidate: await ready(p.candidate_deployment_id), previous: await ready(p.previous_deployment_id) });
    if (tty) process.stdout.write(`\r\x1b[2K${line}`);
    else if (line !== last) console.log(line);
    last = line;
    if (ENDED.has(p.status)) {
      if (tty) process.stdout.write('\n');
      console.log(`promotion ${p.id} ${p.status}${p.message ? `: ${p.message}` : ''}`);
      return p.status === 'SUCCEEDED' ? 0 : 1;
    }
    await new Promise((resolve) => setTimeout(resolve, 500));
  }
}

/** `gantry promote MODEL DEPLOYMENT [--environment ENV] [--follow]`. */
export async function promoteCommand(client: ApiClient, model: string, deployment: string, options: { environment?: string; follow?: boolean; output?: string }): Promise<number> {
  const env = options.environment ?? 'production';
  if (deployment === 'development') {
    if (env !== 'production') throw new Error('the development deployment is promoted to production only');
    const published = await client.request<DeploymentView>('POST', `${modelPath(model)}/deployments/development/promote`);
    console.log(`published the development code as ${published.name} (${published.id}); deploying, then promoting to production`);
    if (!options.follow) return 0;
    const active = await waitForDeployment(client, published, { timeoutSeconds: 1800, quiet: false, log: (line) => console.log(line) });
    if (active.status !== 'ACTIVE') return 1;
    return followPromotionOf(client, model, env, published.id);
  }
  const promotion = await client.request<PromotionView>('POST', `${envPath(model, env)}/promote`, { deployment_id: deployment });
  if (options.output === 'json' && !options.follow) {
    console.log(JSON.stringify(promotion, null, 2));
    return 0;
  }
  console.log(`promoting ${deployment} to ${env}: promotion ${promotion.id} (${promotion.status})`);
  return options.follow ? followPromotion(client, model, env, promotion.id) : 0;
}

/** Follows the promotion of a deployment once its deploy workflow has started it. */
async function followPromotionOf(client: ApiClient, model: string, env: string, deploymentId: string): Promise<number> {
  const deadline = Date.now() + 60_000;
  for (;;) {
    const { promotions } = await client.request<{ promotions: PromotionView[] }>('GET', `${envPath(model, env)}/promotions`);
    const mine = promotions.find((p) => p.candidate_deployment_id === deploymentId);
    if (mine) return followPromotion(client, model, env, mine.id);
    const deployment = await client.getDeployment(model, deploymentId);
    if (deployment.environments.includes(env)) {
      console.log(`${deployment.name} serves ${env}`);
      return 0;
    }
    if (Date.now() > deadline) throw new Error(`no promotion of ${deploymentId} to ${env} started`);
    await new Promise((resolve) => setTimeout(resolve, 500));
  }
}

/** The rollout actions and the API action each sends. */
export const ROLLOUT_ACTIONS = {
  pause: 'pause',
  resume: 'resume',
  cancel: 'cancel',
  'force-cancel': 'force_cancel',
  'force-complete': 'force_roll_forward',
} as const;

/** `gantry rollout status|pause|resume|cancel|force-cancel|force-complete MODEL [--environment ENV]`. */
export async function rolloutCommand(
  client: ApiClient,
  action: 'status' | keyof typeof ROLLOUT_ACTIONS,
  model: string,
  options: { environment?: string; output?: string; follow?: boolean },
): Promise<number> {
  const env = options.environment ?? 'production';
  const promotion =
    action === 'status'
      ? await client.request<PromotionView>('GET', `${envPath(model, env)}/promotion`)
      : await client.request<PromotionView>('POST', `${envPath(model, env)}/${ROLLOUT_ACTIONS[action]}_promotion`);
  if (options.output === 'json') console.log(JSON.stringify(promotion, null, 2));
  else {
    console.log(`promotion ${promotion.id} of ${env}: ${promotion.candidate_deployment_id} replacing ${promotion.previous_deployment_id ?? '(nothing)'}`);
    console.log(progressLine(promotion));
    if (promotion.message) console.log(promotion.message);
  }
  if (options.follow && !ENDED.has(promotion.status)) return followPromotion(client, model, env, promotion.id);
  return 0;
}
