/**
 * Answers of the API that the CLI reads and that have no home in src/shared/views.ts: a
 * development push's result and a deployment's log lines.
 */
import type { DeploymentView } from '../shared/views';

/** What a development push did. */
export interface DevelopmentPushResult {
  deployment: DeploymentView;
  /**
   * created: the first build started; reloaded: the replica runs the new code; woken: the
   * sleeping deployment started on the new code; rebuilding: requirements changed, a rebuild
   * started; failed: the new code did not load and the previous code keeps serving.
   */
  update: 'created' | 'reloaded' | 'woken' | 'rebuilding' | 'failed';
  revision: number;
  seconds?: number;
  error?: string;
}

/** One line of a deployment's log. */
export interface LogEntry {
  /** ISO time the line was written. */
  ts: string;
  /** `build`, `gantry` (status changes) or `replica-<id>`. */
  source: string;
  message: string;
}
