/**
 * Smooth weighted round-robin (as in nginx): over any window of `total` picks each choice is
 * picked exactly in proportion to its weight, and picks of one choice are spread evenly.
 */
export class SmoothWeightedRoundRobin {
  private readonly entries: { key: string; weight: number; current: number }[];
  private readonly total: number;

  /** Choices with non-positive weights are never picked. */
  constructor(weights: Record<string, number>) {
    this.entries = Object.entries(weights)
      .filter(([, weight]) => weight > 0)
      .sort(([a], [b]) => a.localeCompare(b))
      .map(([key, weight]) => ({ key, weight, current: 0 }));
    this.total = this.entries.reduce((sum, entry) => sum + entry.weight, 0);
  }

  /** The next choice, or undefined when every weight is zero. */
  next(): string | undefined {
    let best: (typeof this.entries)[number] | undefined;
    for (const entry of this.entries) {
      entry.current += entry.weight;
      if (!best || entry.current > best.current) best = entry;
    }
    if (!best) return undefined;
    best.current -= this.total;
    return best.key;
  }
}
