/**
 * The gateway's picture of where inference traffic goes, built from each routing snapshot the
 * node pushes in, and the pure resolution of a request (Host and path) to a deployment.
 */
import { PRODUCTION } from '../../shared/constants';
import type { DeploymentStatus } from '../../shared/schemas';
import { environmentKey, type RoutedDeployment, type RoutedRoute, type RoutingSnapshot } from './routing-snapshot';
import { SmoothWeightedRoundRobin } from './weighted-choice';

export type { RoutedDeployment } from './routing-snapshot';

/** An environment's route with its weighted chooser. */
interface RoutedEnvironment {
  current: string | null;
  route: RoutedRoute | undefined;
  chooser: SmoothWeightedRoundRobin | undefined;
}

/** Where a request is meant to go, before any replica is picked. */
export type RequestAddress =
  | { kind: 'environment'; modelId: string; environment: string }
  | { kind: 'deployment'; modelId: string; deploymentId: string }
  | { kind: 'development'; modelId: string };

/** A failure to route, with the HTTP status and error code the gateway answers. */
export interface RoutingError {
  status: 404 | 405 | 503;
  code: string;
  message: string;
}

/** What an inference path asks of a deployment: a prediction, or that it wakes. */
export type InferenceAction = 'predict' | 'wake';

/**
 * A parsed inference path: an action the gateway performs on the deployment at `address`, or
 * an async inference route the API serves, passed on to it at `apiPath` (always the
 * `/models/{id}/…` form, whatever the Host).
 */
export type InferenceRoute = { action: InferenceAction; address: RequestAddress } | { action: 'api'; apiPath: string };

/** The async inference routes of Baseten's API, served by the Gantry API and passed on by the gateway. */
const API_ACTIONS = new Set(['async_predict', 'async_queue_status']);

/**
 * Parses an inference path (docs/api.md, "Inference"), with the model from the Host `model-{id}.localhost`
 * or the path: `/{production|development|environments/{env}|deployment/{id}}/{predict|wake}`
 * for the gateway, `…/async_predict`, `…/async_queue_status` and `/async_request/{id}` for the API.
 */
export function parseInferencePath(host: string | undefined, pathname: string): InferenceRoute | undefined {
  const hostModel = /^model-([a-z0-9]+)\.localhost(?::\d+)?$/i.exec(host ?? '')?.[1]?.toLowerCase();
  let modelId = hostModel;
  let rest = pathname.replace(/\/+$/, '');
  let encodedModel = hostModel;
  if (!modelId) {
    const match = /^\/models\/([^/]+)(\/.*)$/.exec(rest);
    if (!match) return undefined;
    encodedModel = match[1]!;
    modelId = decodedSegment(match[1]!);
    if (modelId === undefined) return undefined;
    rest = match[2]!;
  }
  if (/^\/async_request\/[^/]+$/.test(rest)) return { action: 'api', apiPath: `/models/${encodedModel}${rest}` };
  const target = /^\/(?:production|development|environments\/([^/]+)|deployment\/([^/]+))\/([a-z_]+)$/.exec(rest);
  if (!target) return undefined;
  const [, environment, deploymentId, action] = target;
  if (API_ACTIONS.has(action!)) return { action: 'api', apiPath: `/models/${encodedModel}${rest}` };
  if (action !== 'predict' && action !== 'wake') return undefined;
  let address: RequestAddress;
  const decoded = decodedSegment(environment ?? deploymentId ?? '');
  if (decoded === undefined) return undefined;
  if (environment !== undefined) address = { kind: 'environment', modelId, environment: decoded };
  else if (deploymentId !== undefined) address = { kind: 'deployment', modelId, deploymentId: decoded };
  else if (rest.startsWith('/production/')) address = { kind: 'environment', modelId, environment: PRODUCTION };
  else address = { kind: 'development', modelId };
  return { action, address };
}

/** How many distinct Host and path pairs `InferencePathCache` keeps (all are forgotten past it). */
const CACHED_PATHS = 1024;

/**
 * `parseInferencePath` for the hot path: each Host and path pair parsed once (the routes it
 * returns are shared, never changed). A parsed path depends on nothing but its text, so a
 * snapshot never makes an entry stale.
 */
export class InferencePathCache {
  private readonly routes = new Map<string, InferenceRoute | null>();

  /** What `parseInferencePath(host, pathname)` returns. */
  parse(host: string | undefined, pathname: string): InferenceRoute | undefined {
    const key = host === undefined ? pathname : `${host}\n${pathname}`;
    let route = this.routes.get(key);
    if (route === undefined) {
      route = parseInferencePath(host, pathname) ?? null;
      if (this.routes.size >= CACHED_PATHS) this.routes.clear();
      this.routes.set(key, route);
    }
    return route ?? undefined;
  }
}

/** A path segment with its percent-escapes decoded, or undefined when they are malformed (`%zz`, a cut UTF-8 sequence): such a path names nothing. */
function decodedSegment(segment: string): string | undefined {
  try {
    return decodeURIComponent(segment);
  } catch {
    return undefined;
  }
}

// Not here: DEPLOYING (its replicas serve as soon as they are ready, so nothing is refused
// between "ready" and "ACTIVE") and SCALED_TO_ZERO / WAKING_UP (a request wakes them and waits).
const NOT_SERVING: Partial<Record<DeploymentStatus, string>> = {
  BUILDING: 'is still building',
  BUILD_FAILED: 'failed to build',
  DEPLOY_FAILED: 'failed to deploy',
};

/** The routes and deployments the gateway serves from, with per-route weighted choosers. */
export class RoutingTable {
  private readonly models = new Set<string>();
  private readonly deployments = new Map<string, RoutedDeployment>();
  private readonly environments = new Map<string, RoutedEnvironment>();
  private readonly development = new Map<string, string>();

  /** Builds the table from a snapshot; choosers of routes whose generation did not change carry over from `previous`. */
  constructor(snapshot: RoutingSnapshot, previous?: RoutingTable) {
    for (const id of snapshot.modelIds) this.models.add(id);
    for (const deployment of snapshot.deployments) {
      this.deployments.set(deployment.id, deployment);
      if (deployment.kind === 'development') this.development.set(deployment.model_id, deployment.id);
    }
    const routeByKey = new Map(snapshot.routes.map((route) => [environmentKey(route.model_id, route.environment), route]));
    for (const env of snapshot.environments) {
      const key = environmentKey(env.model_id, env.name);
      const route = routeByKey.get(key);
      const before = previous?.environments.get(key);
      const chooser = route && before?.route?.generation === route.generation && before.chooser ? before.chooser : route ? new SmoothWeightedRoundRobin(route.weights) : undefined;
      this.environments.set(key, { current: env.current_deployment_id, route, chooser });
    }
  }

  /** `<model>/<environment>` → the route generation this table serves. */
  appliedGenerations(): Record<string, number> {
    const applied: Record<string, number> = {};
    for (const [key, env] of this.environments) if (env.route) applied[key] = env.route.generation;
    return applied;
  }

  /** A live deployment by id. */
  deployment(id: string): RoutedDeployment | undefined {
    return this.deployments.get(id);
  }

  /** Resolves an address to the deployment that should answer it, or a routing error. */
  resolve(address: RequestAddress): { deployment: RoutedDeployment } | { error: RoutingError } {
    const found = this.candidates(address, (env) => env.chooser?.next() ?? env.current ?? undefined);
    if ('error' in found) return found;
    return this.serving(address.modelId, found.ids[0]!);
  }

  /**
   * The deployments a wake of `address` wakes: the deployment it names; for an environment, its
   * current deployment and every deployment its route gives weight (both sides of a promotion).
   * Those that cannot serve are left out; when none can, the first one's routing error.
   */
  wakeTargets(address: RequestAddress): { deployments: RoutedDeployment[] } | { error: RoutingError } {
    const found = this.candidates(
      address,
      (env) => env.current ?? undefined,
      (env) =>
        Object.entries(env.route?.weights ?? {})
          .filter(([, weight]) => weight > 0)
          .map(([id]) => id),
    );
    if ('error' in found) return found;
    const checked = [...new Set(found.ids)].map((id) => this.serving(address.modelId, id));
    const deployments = checked.flatMap((c) => ('deployment' in c ? [c.deployment] : []));
    return deployments.length > 0 ? { deployments } : (checked[0] as { error: RoutingError });
  }

  /** The deployment ids an address names (the first is the one that answers), or why there are none. */
  private candidates(
    address: RequestAddress,
    first: (env: RoutedEnvironment) => string | undefined,
    others: (env: RoutedEnvironment) => string[] = () => [],
  ): { ids: string[] } | { error: RoutingError } {
    if (!this.models.has(address.modelId)) {
      return { error: { status: 404, code: 'not_found', message: `model ${address.modelId} not found` } };
    }
    if (address.kind === 'environment') {
      const env = this.environments.get(environmentKey(address.modelId, address.environment));
      if (!env) {
        return { error: { status: 404, code: 'not_found', message: `environment ${address.environment} not found for model ${address.modelId}` } };
      }
      const ids = [first(env), ...others(env)].filter((id): id is string => id !== undefined);
      if (ids.length === 0) {
        return { error: { status: 404, code: 'not_found', message: `environment ${address.environment} of model ${address.modelId} has no deployment yet` } };
      }
      return { ids };
    }
    if (address.kind === 'development') {
      const id = this.development.get(address.modelId);
      if (!id) return { error: { status: 404, code: 'not_found', message: `model ${address.modelId} has no development deployment` } };
      return { ids: [id] };
    }
    return { ids: [address.deploymentId] };
  }

  /** The deployment if it belongs to the model and can serve (now, or once woken), else the routing error. */
  private serving(modelId: string, deploymentId: string): { deployment: RoutedDeployment } | { error: RoutingError } {
    const deployment = this.deployments.get(deploymentId);
    if (!deployment || deployment.model_id !== modelId) {
      return { error: { status: 404, code: 'not_found', message: `deployment ${deploymentId} not found for model ${modelId}` } };
    }
    if (deployment.status === 'INACTIVE' || deployment.status === 'DEACTIVATING') {
      return { error: { status: 404, code: 'deployment_inactive', message: `deployment ${deployment.name} (${deployment.id}) is deactivated` } };
    }
    const notServing = NOT_SERVING[deployment.status];
    if (notServing) {
      return { error: { status: 503, code: 'unavailable', message: `deployment ${deployment.name} (${deployment.id}) ${notServing}` } };
    }
    return { deployment };
  }
}
