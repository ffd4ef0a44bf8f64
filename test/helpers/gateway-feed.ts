/** Feeding an in-process gateway in unit tests, as the node does: a routing snapshot from the store, ready replicas from stand-ins. */
import type { Gateway } from '../../src/node/gateway/gateway';
import { readRoutingSnapshot } from '../../src/node/routing-snapshot';
import type { Store } from '../../src/store/store';
import type { StandInReplica } from './stand-in-replica';

/** Pushes the store's routing snapshot into the gateway. */
export async function pushRouting(gateway: Gateway, store: Store): Promise<void> {
  gateway.applyRouting(await readRoutingSnapshot(store));
}

/** Pushes the stand-ins as the ready replicas of their deployments. */
export function pushReplicas(gateway: Gateway, replicas: ReadonlyMap<string, readonly StandInReplica[]>): void {
  gateway.applyReplicas(
    Object.fromEntries([...replicas].map(([deploymentId, standIns]) => [deploymentId, standIns.map(({ replica }) => ({ id: replica.id, port: replica.port }))])),
  );
}
