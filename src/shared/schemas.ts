/**
 * zod schemas: the single source of every request shape and of the model package's
 * config.yaml. Types are inferred from them; the API boundary and the build are the only
 * places these parse user input.
 */
import { z } from 'zod';
import { MAX_SECRET_VALUE_BYTES, SECRET_NAME_PATTERN } from './secrets';

/** Every status a deployment can be in (docs/lifecycle.md). */
export const deploymentStatuses = [
  'BUILDING',
  'BUILD_FAILED',
  'DEPLOYING',
  'DEPLOY_FAILED',
  'ACTIVE',
  'UPDATING',
  'SCALED_TO_ZERO',
  'WAKING_UP',
  'UNHEALTHY',
  'DEACTIVATING',
  'INACTIVE',
] as const;
/** A deployment's lifecycle status. */
export type DeploymentStatus = (typeof deploymentStatuses)[number];

/** A model's name: what users push under and call it by. */
export const modelNameSchema = z
  .string()
  .min(1)
  .max(64)
  .regex(/^[A-Za-z0-9][A-Za-z0-9 ._-]*$/, 'letters, digits, space, dot, underscore and dash, starting with a letter or digit');

/** A deployment's custom name, unique within its model. */
export const deploymentNameSchema = z
  .string()
  .min(1)
  .max(63)
  .regex(/^[a-z0-9]([a-z0-9._-]*[a-z0-9])?$/, 'lowercase letters, digits, dot, underscore and dash, starting and ending with a letter or digit')
  .refine((name) => name !== 'production' && name !== 'development', 'production and development are reserved')
  .meta({ override: { not: { enum: ['production', 'development'] } } });

/** Deployment labels: string keys to string values, as in Kubernetes. */
export const labelsSchema = z
  .record(z.string(), z.string().max(256, 'label values are at most 256 characters'))
  .superRefine((labels, ctx) => {
    const keys = Object.keys(labels);
    if (keys.length > 64) ctx.addIssue({ code: 'custom', message: `at most 64 labels (got ${keys.length})` });
    for (const key of keys) {
      if (!/^[A-Za-z0-9._/-]{1,63}$/.test(key)) {
        ctx.addIssue({ code: 'custom', path: [key], message: `label key "${key}" must be 1-63 letters, digits or . _ / -` });
      }
    }
  })
  .meta({ override: { maxProperties: 64, propertyNames: { type: 'string', pattern: '^[A-Za-z0-9._/-]{1,63}$' } } });
/** A deployment's labels. */
export type Labels = z.infer<typeof labelsSchema>;

/** An environment's name: lowercase, starting with a letter, as in DNS labels. */
export const environmentNameSchema = z.string().regex(/^[a-z][a-z0-9-]{0,62}$/, 'lowercase letters, digits and dashes, starting with a letter, at most 63 characters');

/** The `options` part of a push (POST /v1/deployments). */
export const pushOptionsSchema = z
  .strictObject({
    model_name: modelNameSchema,
    deployment_name: deploymentNameSchema.optional(),
    labels: labelsSchema.default({}),
    /** Promote the deployment to this environment once it is ACTIVE. */
    environment: environmentNameSchema.optional(),
    /** Create or update the model's development deployment instead of publishing a new one. */
    development: z.boolean().default(false),
  })
  .refine((options) => !(options.development && options.deployment_name), {
    message: 'a development deployment is always named development',
    path: ['deployment_name'],
  })
  .refine((options) => !(options.development && options.environment), {
    message: 'a development deployment is not promoted by a push; promote it with POST .../deployments/development/promote',
    path: ['environment'],
  });
/** What a push asks for besides the archive. */
export type PushOptions = z.infer<typeof pushOptionsSchema>;

/** The largest replica count one deployment may ask for. */
export const MAX_REPLICAS = 32;
const replicaCount = z.number().int().min(0).max(MAX_REPLICAS);

/** PATCH /v1/models/{m}/deployments/{ref}/autoscaling_settings (any subset of the fields). */
export const autoscalingSettingsPatchSchema = z
  .strictObject({
    min_replica: replicaCount.optional(),
    max_replica: replicaCount.min(1).optional(),
    /** Requests in flight one replica is meant to carry. */
    concurrency_target: z.number().int().min(1).max(1024).optional(),
    /** Seconds of in-flight samples averaged to decide the replica count. */
    autoscaling_window: z.number().int().min(10).max(3600).optional(),
    /** Seconds demand must stay lower before replicas are taken away (or, at min_replica 0, without requests before zero). */
    scale_down_delay: z.number().int().min(0).max(3600).optional(),
  })
  .refine((patch) => Object.keys(patch).length > 0, 'give at least one autoscaling setting')
  .meta({ override: { minProperties: 1 } });
/** A change to a deployment's autoscaling settings. */
export type AutoscalingSettingsPatch = z.infer<typeof autoscalingSettingsPatchSchema>;

/** A deployment's replica bounds and how the autoscaler moves between them (as the API answers them). */
export const autoscalingSettingsSchema = z
  .strictObject({
    min_replica: replicaCount,
    max_replica: replicaCount,
    /** Requests in flight one replica is meant to carry. */
    concurrency_target: z.number().int(),
    /** Seconds of in-flight samples averaged to decide the replica count. */
    autoscaling_window: z.number().int(),
    /** Seconds demand must stay lower before replicas are taken away. */
    scale_down_delay: z.number().int(),
  })
  .meta({ id: 'AutoscalingSettings' });
/** A deployment's replica bounds and how the autoscaler moves between them. */
export type AutoscalingSettings = z.infer<typeof autoscalingSettingsSchema>;

/** The settings a published deployment starts with. */
export const DEFAULT_AUTOSCALING: AutoscalingSettings = {
  min_replica: 1,
  max_replica: 1,
  concurrency_target: 1,
  autoscaling_window: 60,
  scale_down_delay: 900,
};

/** A development deployment: one replica at most, asleep when idle. */
export const DEVELOPMENT_AUTOSCALING: AutoscalingSettings = { ...DEFAULT_AUTOSCALING, min_replica: 0, max_replica: 1 };

/** Settings stored before a field existed get its default. */
export function withAutoscalingDefaults(stored: Partial<AutoscalingSettings>): AutoscalingSettings {
  return { ...DEFAULT_AUTOSCALING, ...stored };
}

/** `?tail=` on the logs endpoint. */
/** GET /v1/events: every model, or one model by id or name. */
export const eventsQuerySchema = z.strictObject({
  model: z.string().min(1).optional(),
});

/** GET …/logs. */
export const logsQuerySchema = z.strictObject({
  tail: z.coerce.number().int().min(1).max(100_000).default(1000),
  /** `true`: answer server-sent `log` events, the tail first, then each new line as it is written. */
  follow: z
    .enum(['true', 'false'])
    .default('false')
    .transform((value) => value === 'true'),
});

const envValue = z.union([z.string(), z.number(), z.boolean()]).transform(String);

/**
 * `runtime.predict_timeout_seconds` when config.yaml does not set it, and for deployments
 * built before the key existed.
 */
export const DEFAULT_PREDICT_TIMEOUT_SECONDS = 600;

/** A model package's config.yaml (docs/model-packages.md). Unknown keys are kept and reported, not refused. */
export const modelConfigSchema = z.looseObject({
  model_name: modelNameSchema.optional(),
  requirements: z.array(z.string().trim().min(1, 'empty requirement')).default([]),
  environment_variables: z.record(z.string().regex(/^[A-Za-z_][A-Za-z0-9_]*$/, 'environment variable names are letters, digits and _'), envValue).default({}),
  model_module_dir: z.string().min(1).default('model'),
  model_class_filename: z
    .string()
    .regex(/^[A-Za-z_][A-Za-z0-9_]*\.py$/, 'a Python file name such as model.py')
    .default('model.py'),
  model_class_name: z
    .string()
    .regex(/^[A-Za-z_][A-Za-z0-9_]*$/, 'a Python class name')
    .default('Model'),
  data_dir: z.string().min(1).default('data'),
  runtime: z
    .looseObject({
      predict_concurrency: z.number().int().min(1).max(1024).default(1),
      /**
       * Seconds the gateway waits for a replica to start answering a predict before it
       * answers 504 `upstream_timeout`. A Gantry extension: Truss's config.yaml has no such key.
       */
      predict_timeout_seconds: z.number().int().min(1).max(3600).default(DEFAULT_PREDICT_TIMEOUT_SECONDS),
    })
    .default({ predict_concurrency: 1, predict_timeout_seconds: DEFAULT_PREDICT_TIMEOUT_SECONDS }),
  resources: z.record(z.string(), z.unknown()).optional(),
  /**
   * The secrets the model needs, by name (Truss's shape: `{hf_access_token: null}`). Values here
   * are placeholders and never used: replicas get the values set with `gantry secrets set`.
   */
  secrets: z.record(z.string().regex(SECRET_NAME_PATTERN, 'secret names are 1-128 letters, digits, underscore, dot or dash'), z.union([z.string(), z.null()])).default({}),
});
/** A parsed config.yaml with defaults filled in. */
export type ModelConfig = z.infer<typeof modelConfigSchema>;

/** Renders zod issues as `field: message` strings for error details. */
export function describeIssues(error: z.ZodError): { field: string; message: string }[] {
  return error.issues.map((issue) => ({ field: issue.path.join('.') || '(root)', message: issue.message }));
}

/** What happens to the previous deployment once a promotion succeeds. */
export const cleanupStrategies = ['SCALE_TO_ZERO', 'KEEP', 'DEACTIVATE'] as const;
/** A cleanup strategy. */
export type CleanupStrategy = (typeof cleanupStrategies)[number];

const percent = z.number().int().min(0).max(50);

/** How a rolling promotion moves: surge (candidate up first) or unavailable (previous down first). */
export const rollingDeployConfigSchema = z
  .strictObject({
    max_surge_percent: percent.default(25),
    max_unavailable_percent: percent.default(0),
    stabilization_time_seconds: z.number().int().min(0).max(3600).default(10),
  })
  .refine((config) => (config.max_surge_percent === 0) !== (config.max_unavailable_percent === 0), {
    message: 'exactly one of max_surge_percent and max_unavailable_percent must be non-zero',
    path: ['max_surge_percent'],
  });
/** A rolling deploy configuration with defaults filled in. */
export type RollingDeployConfig = z.infer<typeof rollingDeployConfigSchema>;

/** An environment's promotion settings, with defaults. */
export const promotionSettingsSchema = z.strictObject({
  rolling_deploy: z.boolean().default(true),
  rolling_deploy_config: rollingDeployConfigSchema.default({ max_surge_percent: 25, max_unavailable_percent: 0, stabilization_time_seconds: 10 }),
  promotion_cleanup_strategy: z.enum(cleanupStrategies).default('SCALE_TO_ZERO'),
  promotion_timeout_seconds: z.number().int().min(10).max(86_400).default(600),
  /** Deprecated canary: candidate to N, then traffic in 10 equal stages over ramp_up_duration_seconds. */
  ramp_up_while_promoting: z.boolean().default(false),
  ramp_up_duration_seconds: z.number().int().min(10).max(86_400).default(600),
});
/** Promotion settings with every default filled in. */
export type PromotionSettings = z.infer<typeof promotionSettingsSchema>;

/** The settings an environment gets when none are given. */
export const DEFAULT_PROMOTION_SETTINGS: PromotionSettings = promotionSettingsSchema.parse({});

/** A partial change to promotion settings; `rolling_deploy_config` merges field by field. */
export const promotionSettingsPatchSchema = z.strictObject({
  rolling_deploy: z.boolean().optional(),
  rolling_deploy_config: z
    .strictObject({
      max_surge_percent: percent.optional(),
      max_unavailable_percent: percent.optional(),
      stabilization_time_seconds: z.number().int().min(0).max(3600).optional(),
    })
    .optional(),
  promotion_cleanup_strategy: z.enum(cleanupStrategies).optional(),
  promotion_timeout_seconds: z.number().int().min(10).max(86_400).optional(),
  ramp_up_while_promoting: z.boolean().optional(),
  ramp_up_duration_seconds: z.number().int().min(10).max(86_400).optional(),
});
/** A partial change to promotion settings. */
export type PromotionSettingsPatch = z.infer<typeof promotionSettingsPatchSchema>;

/** POST /v1/models/{m}/environments. */
export const createEnvironmentSchema = z.strictObject({
  name: environmentNameSchema,
  promotion_settings: promotionSettingsPatchSchema.optional(),
});

/** PATCH /v1/models/{m}/environments/{env}. */
export const updateEnvironmentSchema = z.strictObject({
  promotion_settings: promotionSettingsPatchSchema,
});

/** POST /v1/models/{m}/environments/{env}/promote. */
export const promoteRequestSchema = z.strictObject({
  deployment_id: z.string().min(1).max(63),
});

/** The actions a user can take on an in-flight promotion. */
export const promotionActions = ['pause', 'resume', 'cancel', 'force_cancel', 'force_roll_forward'] as const;
/** An action on an in-flight promotion. */
export type PromotionAction = (typeof promotionActions)[number];

/** PATCH /v1/models/{m}/deployments/{ref}: a new name, new labels (replacing the old), or both. */
export const updateDeploymentSchema = z
  .strictObject({ name: deploymentNameSchema.optional(), labels: labelsSchema.optional() })
  .refine((patch) => patch.name !== undefined || patch.labels !== undefined, 'give name, labels or both')
  .meta({ override: { anyOf: [{ required: ['name'] }, { required: ['labels'] }] } });
/** A change to a deployment's name or labels. */
export type DeploymentUpdate = z.infer<typeof updateDeploymentSchema>;

/** One `key:value` label filter. */
export const labelFilterSchema = z
  .string()
  .regex(/^[A-Za-z0-9._/-]{1,63}:.{0,256}$/, 'label filters are key:value, such as team:ml')
  .transform((filter) => {
    const at = filter.indexOf(':');
    return { key: filter.slice(0, at), value: filter.slice(at + 1) };
  });

/** `?label=k:v` (repeatable, all must match) on GET /v1/models/{m}/deployments. */
export const deploymentListQuerySchema = z.strictObject({
  label: z.preprocess((value) => (value === undefined ? [] : Array.isArray(value) ? value : [value]), z.array(labelFilterSchema)),
});

const isoTime = z.iso.datetime({ offset: true, message: 'an ISO 8601 time such as 2026-11-27T00:00:00Z' });

/** The longest range one usage query may span. */
export const MAX_USAGE_RANGE_DAYS = 93;

/** GET /v1/usage?start=&end= (default: the last 24 hours). */
export const usageQuerySchema = z
  .strictObject({ start: isoTime.optional(), end: isoTime.optional() })
  .transform((query) => {
    const end = query.end ? new Date(query.end) : new Date();
    const start = query.start ? new Date(query.start) : new Date(end.getTime() - 24 * 3600_000);
    return { start, end };
  })
  .refine((range) => range.end > range.start, { message: 'end must be after start', path: ['end'] })
  .refine((range) => range.end.getTime() - range.start.getTime() <= MAX_USAGE_RANGE_DAYS * 24 * 3600_000, {
    message: `a usage query spans at most ${MAX_USAGE_RANGE_DAYS} days`,
    path: ['start'],
  });

/** A secret's name (POST /v1/secrets, DELETE /v1/secrets/{name}, config.yaml `secrets`). */
export const secretNameSchema = z.string().regex(SECRET_NAME_PATTERN, '1-128 letters, digits, underscore, dot or dash');

/** POST /v1/secrets: create a secret or rotate its value. */
export const upsertSecretSchema = z.strictObject({
  name: secretNameSchema,
  value: z
    .string()
    .min(1, 'a secret value is a non-empty string')
    .refine((value) => new TextEncoder().encode(value).length <= MAX_SECRET_VALUE_BYTES, `a secret value is at most ${MAX_SECRET_VALUE_BYTES} bytes`),
});
/** A secret to create or rotate. */
export type UpsertSecretRequest = z.infer<typeof upsertSecretSchema>;

/** How an async request's call to the model is retried (Baseten's InferenceRetryConfig). */
export const inferenceRetryConfigSchema = z.strictObject({
  /** Attempts of the predict call, the first included. */
  max_attempts: z.number().int().min(1).max(10).default(3),
  /** Delay before the first retry; doubles with each further retry. */
  initial_delay_ms: z.number().int().min(0).max(10_000).default(1000),
  /** The longest delay between two attempts. */
  max_delay_ms: z.number().int().min(0).max(60_000).default(5000),
});
/** An async request's retry settings, with the defaults filled in. */
export type InferenceRetryConfig = z.infer<typeof inferenceRetryConfigSchema>;

/** POST …/async_predict (Baseten's AsyncPredictRequest). */
export const asyncPredictRequestSchema = z.strictObject({
  /** The model's input: any JSON object. */
  model_input: z.record(z.string(), z.unknown()),
  /** Where the result is POSTed once the request ends (http or https). */
  webhook_endpoint: z
    .url({ protocol: /^https?$/, error: 'must be an http or https URL' })
    .max(2048)
    // A user:password in the URL would be kept with the request and cannot be sent by fetch.
    .refine((url) => !/^[a-z]+:\/\/[^/?#]*@/i.test(url), 'must not hold a user name or password (verify deliveries by their signature)')
    .optional(),
  /** 0 (the highest) to 2: lower values are served first. */
  priority: z.number().int().min(0).max(2).default(0),
  /** How long the request may wait for capacity before it is EXPIRED. */
  max_time_in_queue_seconds: z.number().int().min(10).max(259_200).default(600),
  inference_retry_config: inferenceRetryConfigSchema.default({ max_attempts: 3, initial_delay_ms: 1000, max_delay_ms: 5000 }),
});
/** A parsed async predict request. */
export type AsyncPredictRequest = z.infer<typeof asyncPredictRequestSchema>;
