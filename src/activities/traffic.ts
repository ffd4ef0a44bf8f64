/**
 * Traffic activities: routes are written with a new generation and every live node's
 * gateway reports the generation it applied; "applied" is verified, never assumed.
 */
import { Context, sleep } from '@temporalio/activity';
import { NODE_STALE_AFTER_MS } from '../shared/constants';
import { routeKey } from '../store/store';
import type { ActivityDeps } from './deps';


/** Creates the traffic activities. */
export function createTrafficActivities(deps: ActivityDeps) {
  const pollMs = deps.pollIntervalMs ?? 250;
  return {
    /** Waits until every live node's gateway serves the environment's route at `generation` or later. */
    async awaitRouteApplied(input: { modelId: string; environment: string; generation: number }): Promise<void> {
      const key = routeKey(input.modelId, input.environment);
      for (;;) {
        const nodes = await deps.store.listNodes();
        const live = nodes.filter((node) => Date.now() - Date.parse(node.heartbeat_at) < NODE_STALE_AFTER_MS);
        const behind = live.filter((node) => (node.applied_routes[key] ?? 0) < input.generation);
        Context.current().heartbeat({ behind: behind.map((node) => node.id) });
        if (live.length > 0 && behind.length === 0) return;
        await sleep(pollMs);
      }
    },
  };
}
