import { defineSearchAttributeKey, SearchAttributeType } from '@temporalio/common';

/** The model a workflow acts on; lets the Temporal UI filter by model. */
export const GANTRY_MODEL_ID = defineSearchAttributeKey('GantryModelId', SearchAttributeType.KEYWORD);
/** The deployment a workflow acts on (the candidate, for a promotion). */
export const GANTRY_DEPLOYMENT_ID = defineSearchAttributeKey('GantryDeploymentId', SearchAttributeType.KEYWORD);
/** The environment a promotion targets. */
export const GANTRY_ENVIRONMENT = defineSearchAttributeKey('GantryEnvironment', SearchAttributeType.KEYWORD);

/** Every search attribute Gantry registers in its Temporal namespace. */
export const GANTRY_SEARCH_ATTRIBUTES = [GANTRY_MODEL_ID, GANTRY_DEPLOYMENT_ID, GANTRY_ENVIRONMENT] as const;
