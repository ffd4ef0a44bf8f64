/** The time-skipping test server (from .venv) and the workflow bundle, shared by the workflow tests. */
import { TestWorkflowEnvironment } from '@temporalio/testing';
import { bundleWorkflowCode, DefaultLogger, Runtime, type WorkflowBundleWithSourceMap } from '@temporalio/worker';
import { TEMPORAL_TEST_SERVER } from '../../src/stack/temporal-dev-server';

/**
 * Keeps the SDK's worker logs (TypeScript and native core) to errors so test output stays
 * readable; GANTRY_TEST_LOG_LEVEL (WARN, INFO, DEBUG) shows more when a test needs looking into.
 */
export function installQuietRuntime(): void {
  const level = (process.env.GANTRY_TEST_LOG_LEVEL ?? 'ERROR') as 'ERROR' | 'WARN' | 'INFO' | 'DEBUG';
  try {
    Runtime.install({
      logger: new DefaultLogger(level),
      telemetryOptions: { logging: { filter: { core: level, other: level }, forward: {} } },
    });
  } catch {
    // already installed by another test file in this process
  }
}

const silent = { log() {}, trace() {}, debug() {}, info() {}, warn() {}, error() {} };

/** Starts the time-skipping server installed by `npm install` and bundles Gantry's workflows once. */
export async function startTimeSkipping(): Promise<{ env: TestWorkflowEnvironment; bundle: WorkflowBundleWithSourceMap }> {
  installQuietRuntime();
  const env = await TestWorkflowEnvironment.createTimeSkipping({ server: { executable: { type: 'existing-path', path: TEMPORAL_TEST_SERVER } } });
  const bundle = await bundleWorkflowCode({ workflowsPath: require.resolve('../../src/workflows'), logger: silent });
  return { env, bundle };
}
