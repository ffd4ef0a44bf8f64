import { DefaultLogger, Runtime } from '@temporalio/worker';

/** Keeps the SDK's worker logs (TypeScript and native core) to errors so test output stays readable. */
export function installQuietRuntime(): void {
  try {
    Runtime.install({
      logger: new DefaultLogger('ERROR'),
      telemetryOptions: { logging: { filter: { core: 'ERROR', other: 'ERROR' }, forward: {} } },
    });
  } catch {
    // already installed by another test file in this process
  }
}
