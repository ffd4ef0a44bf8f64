/**
 * Answers of the API that are not one schema of src/shared/views.ts but are built from them: a
 * development push's result, as the service returns it and the CLI reads it.
 */
import type { DeploymentView, DevelopmentUpdate } from '../shared/views';

/** What a development push did (its update, revision, seconds and error), with the deployment. */
export type DevelopmentPushResult = DevelopmentUpdate & { deployment: DeploymentView };
