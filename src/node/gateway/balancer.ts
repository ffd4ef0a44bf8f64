/** Picks the replica for a request: the ready one with the fewest requests in flight. */

/** What the balancer needs to know of a replica. */
export interface Balanceable {
  id: string;
  inFlight: number;
}

/**
 * Least requests in flight; ties are broken round-robin (by `turn`) so idle replicas share
 * sequential traffic instead of the first one taking it all. Two passes, no allocation: it runs
 * for every request.
 */
export function pickLeastInFlight<T extends Balanceable>(replicas: readonly T[], turn: number, exclude?: ReadonlySet<string>): T | undefined {
  let fewest = Number.POSITIVE_INFINITY;
  let tied = 0;
  for (const replica of replicas) {
    if (exclude?.has(replica.id)) continue;
    if (replica.inFlight < fewest) {
      fewest = replica.inFlight;
      tied = 1;
    } else if (replica.inFlight === fewest) tied++;
  }
  if (tied === 0) return undefined;
  let index = turn % tied;
  for (const replica of replicas) {
    if (exclude?.has(replica.id) || replica.inFlight !== fewest) continue;
    if (index-- === 0) return replica;
  }
  return undefined;
}
