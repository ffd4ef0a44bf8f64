/** Picks the replica for a request: the ready one with the fewest requests in flight. */

/** What the balancer needs to know of a replica. */
export interface Balanceable {
  id: string;
  inFlight: number;
}

/**
 * Least requests in flight; ties are broken round-robin (by `turn`) so idle replicas share
 * sequential traffic instead of the first one taking it all.
 */
export function pickLeastInFlight<T extends Balanceable>(replicas: readonly T[], turn: number, exclude: ReadonlySet<string> = new Set()): T | undefined {
  const candidates = replicas.filter((replica) => !exclude.has(replica.id));
  if (candidates.length === 0) return undefined;
  const fewest = Math.min(...candidates.map((replica) => replica.inFlight));
  const tied = candidates.filter((replica) => replica.inFlight === fewest);
  return tied[turn % tied.length];
}
