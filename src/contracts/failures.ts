/**
 * Failure types (ApplicationFailure.type) that cross a process boundary: those activities raise
 * for outcomes that retrying cannot change (workflows match on them and keep the failure as the
 * cause), and those a workflow fails with (clients and tests match on them).
 */

/** The build failed because of the model package (details: [{ kind }]). */
export const BUILD_FAILED = 'BuildFailed';
/** Replicas did not become ready: load() raised, they crash-looped, or the deadline passed. */
export const REPLICAS_NOT_READY = 'ReplicasNotReady';
/** A route change was not applied by every live gateway before its deadline (or no node is live). */
export const ROUTE_NOT_APPLIED = 'RouteNotApplied';
/** The deployment the activity was asked about does not exist. */
export const DEPLOYMENT_NOT_FOUND = 'DeploymentNotFound';

/** Failure types no activity retry should be spent on. */
export const NON_RETRYABLE_FAILURES = [BUILD_FAILED, REPLICAS_NOT_READY, ROUTE_NOT_APPLIED, DEPLOYMENT_NOT_FOUND];

/** An async request's record is gone (it was never stored, or was removed). */
export const ASYNC_REQUEST_GONE = 'AsyncRequestGone';
/** An async request's webhook did not answer 2xx (retried until the webhook's deadline). */
export const WEBHOOK_NOT_DELIVERED = 'WebhookNotDelivered';
/** Error codes an async request's model call fails with that no retry can change (4xx answers). */
export const NON_RETRYABLE_CALL_FAILURES = ['MODEL_INVALID_INPUT', 'MODEL_DOES_NOT_EXIST'];

/** A deploy ended in a way that is not an outcome (an unexpected failure): the deploy workflow fails with this type. */
export const DEPLOY_INTERRUPTED = 'DeployInterrupted';
/** A development update ended without an outcome (cancelled or failed unexpectedly) after putting the previous revision back. */
export const DEVELOPMENT_UPDATE_INTERRUPTED = 'DevelopmentUpdateInterrupted';
/** A promotion could not record its end (the store refused it every time): the workflow fails with this type and the repair loop ends the record. */
export const PROMOTION_NOT_RECORDED = 'PromotionNotRecorded';
