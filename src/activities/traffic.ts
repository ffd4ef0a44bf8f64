/**
 * Traffic activities: routes are written with a new generation and every live node's
 * gateway reports the generation it applied; "applied" is verified, never assumed.
 */
import { ApplicationFailure, Context, sleep } from '@temporalio/activity';
import { liveNodes, nodesBehind, routeKey } from '../store/store';
import type { ActivityDeps } from './deps';
import { ROUTE_NOT_APPLIED } from '../contracts/failures';

/** Creates the traffic activities. */
export function createTrafficActivities(deps: ActivityDeps) {
  const pollMs = deps.pollIntervalMs ?? 250;
  return {
    /**
     * Waits until every live node's gateway serves the environment's route at `generation` or
     * later. Fails (non-retryable `RouteNotApplied`) once `deadlineMs` (epoch ms, fixed by the
     * workflow so retries do not extend it) has passed; without one it waits as long as it runs.
     */
    async awaitRouteApplied(input: { modelId: string; environment: string; generation: number; deadlineMs?: number }): Promise<void> {
      const key = routeKey(input.modelId, input.environment);
      for (;;) {
        const live = liveNodes(await deps.store.listNodes());
        const behind = nodesBehind(live, key, input.generation);
        Context.current().heartbeat({ behind: behind.map((node) => node.id) });
        if (live.length > 0 && behind.length === 0) return;
        if (input.deadlineMs !== undefined && Date.now() > input.deadlineMs) {
          const who = live.length === 0 ? 'no node is live' : `node ${behind.map((node) => node.id).join(', ')} still serves an older generation`;
          throw ApplicationFailure.nonRetryable(`the route of ${input.environment} at generation ${input.generation} was not applied in time: ${who}`, ROUTE_NOT_APPLIED);
        }
        await sleep(pollMs);
      }
    },
  };
}
