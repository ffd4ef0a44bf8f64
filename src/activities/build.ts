/** The build activity: turns a pushed archive into a runnable package and Python environment. */
import { ApplicationFailure, Context } from '@temporalio/activity';
import { BuildError } from '../build/build-error';
import { buildModelPackage } from '../build/builder';
import { archivePath, buildDir } from '../home';
import { processLogger } from '../logging/logger';
import { appendLog } from '../logs/deployment-logs';
import type { ActivityDeps } from './deps';
import { BUILD_FAILED } from '../contracts/failures';
import { requireDeployment } from './records';
import type { BuildOutcome } from '../contracts/activities';
import { DEFAULT_PACKAGE_LIMITS } from '../shared/constants';
import { sandboxUid } from '../sandbox/sandbox';

/** How often a build says it is alive (its heartbeat timeout is 20 s). */
const BUILD_HEARTBEAT_MS = 5_000;

/** How long a build may run when the worker was not told (GANTRY_BUILD_TIMEOUT_SECONDS's default). */
const DEFAULT_BUILD_TIMEOUT_SECONDS = 1200;

/** Creates the build activity. */
export function createBuildActivities(deps: ActivityDeps) {
  return {
    /**
     * Builds a deployment's package and environment, logging every step to its build log.
     * Failures the user must fix are non-retryable `BuildFailed` with `{ kind }` details.
     */
    async buildDeployment(input: { deploymentId: string; revision?: number }): Promise<BuildOutcome> {
      const revision = input.revision ?? 0;
      const deployment = await requireDeployment(deps, input.deploymentId);
      // Every line goes to the deployment's log; in the worker's own log, the build's output at
      // debug and its start and end at info.
      const logger = processLogger().child({ deploymentId: input.deploymentId, workflowId: Context.current().info.workflowExecution?.workflowId, source: 'build' });
      const log = (line: string, level: 'debug' | 'info' | 'warn' = 'debug'): void => {
        appendLog(deps.paths.logs, input.deploymentId, 'build', [line]);
        logger[level](line);
      };
      const heartbeat = (): void => Context.current().heartbeat();
      const attempt = Context.current().info.attempt;
      log(attempt > 1 ? `build started (attempt ${attempt})` : 'build started', 'info');
      // Alive as long as the build runs, whatever step it is in (unpacking a large archive too).
      const beat = setInterval(heartbeat, BUILD_HEARTBEAT_MS);
      // The build stops (its processes killed with their groups) at its deadline, or when Temporal
      // cancels the activity (the workflow was cancelled, or the activity timed out).
      const timeoutSeconds = deps.buildTimeoutSeconds ?? DEFAULT_BUILD_TIMEOUT_SECONDS;
      const stop = new AbortController();
      const deadline = setTimeout(
        () => stop.abort(new BuildError('BUILD_TIMEOUT', `the build did not finish within GANTRY_BUILD_TIMEOUT_SECONDS=${timeoutSeconds}; its processes were killed`)),
        timeoutSeconds * 1000,
      );
      const cancellation = Context.current().cancellationSignal;
      const onCancel = (): void => stop.abort(cancellation.reason ?? new Error('the build was cancelled'));
      if (cancellation.aborted) onCancel();
      else cancellation.addEventListener('abort', onCancel, { once: true });
      try {
        // A uid of this build's own (its pip and import check), apart from the model's replicas' uid,
        // so that whatever the build leaves running can be killed by uid without touching them.
        const buildOwner = `build:${deployment.id}:${revision}`;
        const sandbox = deps.sandbox ? { sandbox: deps.sandbox, uid: sandboxUid(deps.sandbox, await deps.store.sandboxUserOffset(buildOwner)) } : undefined;
        const result = await buildModelPackage({
          archive: archivePath(deps.paths, input.deploymentId, revision),
          packageDir: buildDir(deps.paths, input.deploymentId, revision),
          venvsDir: deps.paths.venvs,
          basePython: deps.basePython,
          limits: deps.packageLimits ?? DEFAULT_PACKAGE_LIMITS,
          log: (line) => log(line),
          heartbeat,
          signal: stop.signal,
          sandbox,
          pipAllowedOptions: deps.pipAllowedOptions,
        });
        // The first build is the deployment's code; a development update is applied by its workflow.
        if (revision === 0) await deps.store.updateDeployment(input.deploymentId, { config: result.config, env_key: result.envKey });
        log(`build succeeded${result.reusedEnvironment ? ' (Python environment reused)' : ''}`, 'info');
        return { envKey: result.envKey, reusedEnvironment: result.reusedEnvironment, config: result.config };
      } catch (error) {
        if (error instanceof BuildError) {
          log(`build failed: ${error.message}`, 'warn');
          throw ApplicationFailure.create({ message: error.message, type: BUILD_FAILED, nonRetryable: true, details: [{ kind: error.kind }] });
        }
        if (cancellation.aborted) log(`build stopped: it was cancelled (${String(cancellation.reason ?? 'cancelled')}); its processes were killed`, 'warn');
        else log(`build attempt failed: ${(error as Error).message}`, 'warn');
        throw error;
      } finally {
        clearInterval(beat);
        clearTimeout(deadline);
        cancellation.removeEventListener('abort', onCancel);
      }
    },
  };
}
