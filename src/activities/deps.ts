import type { HomePaths } from '../home';
import type { Sandbox } from '../sandbox/sandbox';
import type { PackageLimits } from '../shared/constants';
import type { Store } from '../store/store';
import type { WorkflowsClient } from '../temporal/workflows-client';

/** What activities need from the process that runs them. */
export interface ActivityDeps {
  store: Store;
  paths: HomePaths;
  /** The interpreter Python environments are made from. */
  basePython: string;
  /** How much a pushed package may unpack to (DEFAULT_PACKAGE_LIMITS when not given). */
  packageLimits?: PackageLimits;
  /** Starts workflows from activities (a push that asks for a promotion). */
  workflows?: WorkflowsClient;
  /** What async prediction activities need: the key they call the gateway with and the webhook secret (read when first needed). */
  asyncCalls?: { apiKey: () => string; webhookSecret: () => string };
  /** How long one build may run before its processes are killed (GANTRY_BUILD_TIMEOUT_SECONDS; 1200 s when not given). */
  buildTimeoutSeconds?: number;
  /** The sandbox pip and the import check run in (undefined: model isolation is off or unavailable). */
  sandbox?: Sandbox;
  /** The pip options requirement lines may use (GANTRY_PIP_ALLOWED_OPTIONS; none when not given). */
  pipAllowedOptions?: string[];
  /** How often observed state is polled while waiting (ms). */
  pollIntervalMs?: number;
}
