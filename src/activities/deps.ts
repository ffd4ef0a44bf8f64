import type { HomePaths } from '../home';
import type { Store } from '../store/store';

/** What activities need from the process that runs them. */
export interface ActivityDeps {
  store: Store;
  paths: HomePaths;
  /** The interpreter Python environments are made from. */
  basePython: string;
  /** How often observed state is polled while waiting (ms). */
  pollIntervalMs?: number;
}
