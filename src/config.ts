import * as os from 'node:os';
import * as path from 'node:path';
import { z } from 'zod';
import { DEFAULT_MAX_CONCURRENT_UPLOADS, DEFAULT_PACKAGE_LIMITS, type PackageLimits } from './shared/constants';
import { defaultSandboxUidBase, ISOLATION_MODES, SANDBOX_UID_BASE_MIN, SANDBOX_UID_MAX, type IsolationMode } from './shared/isolation';
import { logFormatSchema, logLevelSchema, type LogLevelName } from './logging/logger';

const port = z.coerce.number().int().min(1).max(65535);
const positiveSeconds = z.coerce.number().int().min(1).max(86_400);

/** The environment variables Gantry reads, with their defaults. */
export const configSchema = z.object({
  GANTRY_HOME: z.string().min(1).default('./.gantry'),
  GANTRY_HOST: z.string().min(1).default('127.0.0.1'),
  GANTRY_API_PORT: port.default(8080),
  GANTRY_GATEWAY_PORT: port.default(8081),
  GANTRY_WORKER_METRICS_PORT: port.default(8082),
  TEMPORAL_ADDRESS: z
    .string()
    .regex(/^[^:\s]+:\d{1,5}$/, 'must be host:port')
    .default('127.0.0.1:7233'),
  GANTRY_TEMPORAL_UI_PORT: port.default(8233),
  /** The Temporal Web UI the dashboard links workflows to (set by `npm start` when it serves one). */
  GANTRY_TEMPORAL_UI_URL: z.url().optional(),
  TEMPORAL_NAMESPACE: z.string().min(1).default('default'),
  GANTRY_API_KEY: z.string().min(16, 'must be at least 16 characters').optional(),
  GANTRY_PYTHON: z.string().min(1).default('python3'),
  GANTRY_NODE_ID: z
    .string()
    .regex(/^[a-z0-9-]{1,40}$/)
    .default('local'),
  GANTRY_DEPLOY_TIMEOUT_SECONDS: positiveSeconds.default(900),
  GANTRY_MAX_ARCHIVE_MB: z.coerce.number().int().min(1).max(10_240).default(512),
  /** The most bytes of file contents a package may unpack to. */
  GANTRY_PACKAGE_MAX_UNPACKED_BYTES: z.coerce
    .number()
    .int()
    .min(1024 * 1024)
    .max(2 ** 44)
    .default(DEFAULT_PACKAGE_LIMITS.maxUnpackedBytes),
  /** The most files and folders a package may hold. */
  GANTRY_PACKAGE_MAX_FILES: z.coerce.number().int().min(10).max(10_000_000).default(DEFAULT_PACKAGE_LIMITS.maxFiles),
  /** How many pushes the API receives at once; more are answered 503 with Retry-After. */
  GANTRY_MAX_CONCURRENT_UPLOADS: z.coerce.number().int().min(1).max(1000).default(DEFAULT_MAX_CONCURRENT_UPLOADS),
  GANTRY_WAKE_TIMEOUT_SECONDS: positiveSeconds.default(60),
  GANTRY_WAKE_QUEUE_SIZE: z.coerce.number().int().min(1).max(100_000).default(256),
  GANTRY_USAGE_FLUSH_SECONDS: positiveSeconds.default(60),
  GANTRY_WEBHOOK_SECRET: z.string().min(16, 'must be at least 16 characters').optional(),
  GANTRY_WEBHOOK_RETRY_SECONDS: positiveSeconds.default(3600),
  GANTRY_ASYNC_RETENTION_SECONDS: z.coerce.number().int().min(60).max(31_536_000).default(604_800),
  /** The least severe process log lines printed: trace, debug, info, warn, error, fatal or silent. */
  GANTRY_LOG_LEVEL: logLevelSchema,
  /** How `npm start` prints: json, or pretty (the default in a terminal). */
  GANTRY_LOG_FORMAT: logFormatSchema,
  /** A deployment's log file is rotated when it reaches this size (bytes). */
  GANTRY_DEPLOYMENT_LOG_MAX_BYTES: z.coerce
    .number()
    .int()
    .min(4096)
    .max(2 ** 40)
    .default(10 * 1024 * 1024),
  /** How many rotated files of a deployment's log are kept besides the current one. */
  GANTRY_DEPLOYMENT_LOG_FILES: z.coerce.number().int().min(0).max(100).default(3),
  /** How long one build (unpacking, environment, pip, the import check) may take before its processes are killed. */
  GANTRY_BUILD_TIMEOUT_SECONDS: z.coerce.number().int().min(1).max(1740).default(1200),
  /** How long a Python environment no deployment uses any more is kept before it is removed. */
  GANTRY_VENV_RETENTION_SECONDS: z.coerce.number().int().min(60).max(31_536_000).default(86_400),
  /** The most replica processes one node runs at once, over every deployment. */
  GANTRY_MAX_REPLICAS: z.coerce.number().int().min(1).max(10_000).default(defaultMaxReplicas()),
  /** How model code is fenced off: auto (sandbox when the machine can), sandbox (required), off. */
  GANTRY_ISOLATION: z.enum(ISOLATION_MODES).default('auto'),
  /** The first of the unprivileged uids (and gids) given to models and builds, one each, never reused (default: a range chosen by GANTRY_HOME's path). */
  GANTRY_SANDBOX_UID_BASE: z.coerce.number().int().min(SANDBOX_UID_BASE_MIN).max(SANDBOX_UID_MAX).optional(),
  /** The pip options a requirement line may use (comma separated, e.g. --extra-index-url,--index-url); none by default. */
  GANTRY_PIP_ALLOWED_OPTIONS: z
    .string()
    .default('')
    .transform((list) =>
      list
        .split(',')
        .map((option) => option.trim())
        .filter((option) => option.length > 0),
    )
    .pipe(z.array(z.string().regex(/^--?[a-z][a-z0-9-]*$/, 'must be pip option names such as --extra-index-url, separated by commas'))),
});

/**
 * The default host-wide replica cap: four per CPU. A replica is a Python process that mostly
 * waits on requests, so a few per core keep the cores busy; far more only add memory and
 * scheduling contention and let one runaway scale-up starve the host.
 */
export function defaultMaxReplicas(): number {
  return 4 * Math.max(1, os.availableParallelism());
}

/** Gantry's configuration, resolved from the environment. */
export interface GantryConfig {
  home: string;
  host: string;
  apiPort: number;
  gatewayPort: number;
  /** Where the worker serves its Prometheus metrics (`GET /metrics`). */
  workerMetricsPort: number;
  temporalAddress: string;
  temporalUiPort: number;
  /** The Temporal Web UI, when one is known (the dashboard links to it). */
  temporalUiUrl: string | undefined;
  temporalNamespace: string;
  apiKey: string | undefined;
  python: string;
  nodeId: string;
  deployTimeoutSeconds: number;
  maxArchiveBytes: number;
  /** How much a pushed package may unpack to. */
  packageLimits: PackageLimits;
  /** How many pushes the API receives at once. */
  maxConcurrentUploads: number;
  /** How long a request may wait for a sleeping or starting deployment. */
  wakeTimeoutSeconds: number;
  /** How many requests may wait per deployment. */
  wakeQueueSize: number;
  /** How often metered usage is written to the store (what a crash can lose at most). */
  usageFlushSeconds: number;
  /** The secret async webhooks are signed with (else one kept in GANTRY_HOME/webhook-secret). */
  webhookSecret: string | undefined;
  /** How long a failing webhook delivery is retried before the request is WEBHOOK_FAILED. */
  webhookRetrySeconds: number;
  /** How long an async request's output is kept for GET after the request ended. */
  asyncRetentionSeconds: number;
  /** The least severe process log lines printed. */
  logLevel: LogLevelName;
  /** How `npm start` prints (unset: pretty in a terminal, JSON otherwise). */
  logFormat: 'json' | 'pretty' | undefined;
  /** Deployment log rotation: the size a file is rotated at, and how many rotated files are kept. */
  deploymentLogs: { maxBytes: number; rotatedFiles: number };
  /** How long one build may run before its processes are killed and it fails BUILD_FAILED. */
  buildTimeoutSeconds: number;
  /** The most replica processes this node runs at once (a scale-up beyond it is reported, not run). */
  maxReplicas: number;
  /** How long an unused Python environment is kept. */
  venvRetentionSeconds: number;
  /** How model code is fenced off, and the first uid given to models (docs/operations.md#model-isolation). */
  isolation: { mode: IsolationMode; uidBase: number };
  /** The pip options requirement lines may use. */
  pipAllowedOptions: string[];
}

/** Raised when the environment holds an invalid setting; the message names each one. */
export class ConfigError extends Error {
  override name = 'ConfigError';
}

/** Parses Gantry's configuration from environment variables (process.env by default). */
export function loadConfig(env: NodeJS.ProcessEnv = process.env): GantryConfig {
  const present = Object.fromEntries(
    Object.keys(configSchema.shape)
      .filter((key) => env[key] !== undefined && env[key] !== '')
      .map((key) => [key, env[key]]),
  );
  const parsed = configSchema.safeParse(present);
  if (!parsed.success) {
    const problems = parsed.error.issues.map((issue) => `${issue.path.join('.')}: ${issue.message}`);
    throw new ConfigError(`invalid configuration: ${problems.join('; ')}`);
  }
  const c = parsed.data;
  const home = path.resolve(c.GANTRY_HOME);
  return {
    home,
    host: c.GANTRY_HOST,
    apiPort: c.GANTRY_API_PORT,
    gatewayPort: c.GANTRY_GATEWAY_PORT,
    workerMetricsPort: c.GANTRY_WORKER_METRICS_PORT,
    temporalAddress: c.TEMPORAL_ADDRESS,
    temporalUiPort: c.GANTRY_TEMPORAL_UI_PORT,
    temporalUiUrl: c.GANTRY_TEMPORAL_UI_URL,
    temporalNamespace: c.TEMPORAL_NAMESPACE,
    apiKey: c.GANTRY_API_KEY,
    python: c.GANTRY_PYTHON,
    nodeId: c.GANTRY_NODE_ID,
    deployTimeoutSeconds: c.GANTRY_DEPLOY_TIMEOUT_SECONDS,
    maxArchiveBytes: c.GANTRY_MAX_ARCHIVE_MB * 1024 * 1024,
    packageLimits: { maxUnpackedBytes: c.GANTRY_PACKAGE_MAX_UNPACKED_BYTES, maxFiles: c.GANTRY_PACKAGE_MAX_FILES },
    maxConcurrentUploads: c.GANTRY_MAX_CONCURRENT_UPLOADS,
    wakeTimeoutSeconds: c.GANTRY_WAKE_TIMEOUT_SECONDS,
    wakeQueueSize: c.GANTRY_WAKE_QUEUE_SIZE,
    usageFlushSeconds: c.GANTRY_USAGE_FLUSH_SECONDS,
    webhookSecret: c.GANTRY_WEBHOOK_SECRET,
    webhookRetrySeconds: c.GANTRY_WEBHOOK_RETRY_SECONDS,
    asyncRetentionSeconds: c.GANTRY_ASYNC_RETENTION_SECONDS,
    logLevel: c.GANTRY_LOG_LEVEL,
    logFormat: c.GANTRY_LOG_FORMAT,
    deploymentLogs: { maxBytes: c.GANTRY_DEPLOYMENT_LOG_MAX_BYTES, rotatedFiles: c.GANTRY_DEPLOYMENT_LOG_FILES },
    buildTimeoutSeconds: c.GANTRY_BUILD_TIMEOUT_SECONDS,
    maxReplicas: c.GANTRY_MAX_REPLICAS,
    venvRetentionSeconds: c.GANTRY_VENV_RETENTION_SECONDS,
    isolation: { mode: c.GANTRY_ISOLATION, uidBase: c.GANTRY_SANDBOX_UID_BASE ?? defaultSandboxUidBase(home) },
    pipAllowedOptions: c.GANTRY_PIP_ALLOWED_OPTIONS,
  };
}
