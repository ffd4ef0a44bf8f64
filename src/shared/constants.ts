/** The Temporal task queue every Gantry workflow and activity runs on. */
export const TASK_QUEUE = 'gantry';

/**
 * Workflow ids: one deploy workflow per deployment (docs/architecture.md §3), one promotion at a time per
 * environment, and one update at a time per development deployment (Temporal refuses a second
 * start while one runs, which serializes them).
 */
export const workflowIds = {
  deploy: (deploymentId: string): string => `deploy:${deploymentId}`,
  promotion: (modelId: string, environment: string): string => `promotion:${modelId}:${environment}`,
  developmentUpdate: (deploymentId: string): string => `development:${deploymentId}`,
  /** One workflow per async prediction request. */
  asyncPrediction: (requestId: string): string => `async:${requestId}`,
  /** The id development updates had before they were one at a time per deployment (still running ones keep it). */
  legacyDevelopmentUpdate: (deploymentId: string, revision: number): string => `development:${deploymentId}:${revision}`,
} as const;

/** The name of the environment every model has and that cannot be deleted. */
export const PRODUCTION = 'production';

/** Ref aliases accepted wherever a deployment is named. */
export const DEPLOYMENT_REF_ALIASES = ['production', 'development'] as const;

/** The header the gateway sets on every answer it proxies. */
export const DEPLOYMENT_ID_HEADER = 'x-gantry-deployment-id';

/** A node whose heartbeat is older than this is not counted as serving. */
export const NODE_STALE_AFTER_MS = 15_000;

/** The sources an API client names itself as (`X-Gantry-Client`); any other caller is `api`. */
export const API_CLIENT_SOURCES = ['cli', 'dashboard'] as const;

/** How an API call was made: the CLI, the dashboard, or any other client. */
export type ApiClientSource = 'api' | (typeof API_CLIENT_SOURCES)[number];

/** The header a client names itself in (the browser bundle takes it from here: ./views brings zod with it). */
export const CLIENT_HEADER = 'x-gantry-client';

/** How much a model package may unpack to: bytes of file contents, and files and folders. */
export interface PackageLimits {
  maxUnpackedBytes: number;
  maxFiles: number;
}

/**
 * The package limits when none are set: 2 GiB holds a model with a few small weight files
 * (large weights belong in a download at load time, not in the push), and 50,000 entries is
 * ten times a large Python source tree, while keeping a bomb's cost to seconds.
 */
export const DEFAULT_PACKAGE_LIMITS: PackageLimits = { maxUnpackedBytes: 2 * 1024 ** 3, maxFiles: 50_000 };

/** How many pushes the API receives at once when none is set (more are answered 503). */
export const DEFAULT_MAX_CONCURRENT_UPLOADS = 4;

/** The error codes of an async request (Baseten's AsyncRequestError codes): the schema in views.ts and the workflow's failure mapping. */
export const ASYNC_REQUEST_ERROR_CODES = [
  'MODEL_PREDICT_ERROR',
  'MODEL_PREDICT_TIMEOUT',
  'MODEL_NOT_READY',
  'MODEL_DOES_NOT_EXIST',
  'MODEL_UNAVAILABLE',
  'MODEL_INVALID_INPUT',
  'ASYNC_REQUEST_NOT_SUPPORTED',
  'INTERNAL_SERVER_ERROR',
] as const;
