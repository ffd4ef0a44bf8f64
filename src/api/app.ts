/** The management API (docs/api.md) as an Express app, built from its dependencies. */
import express from 'express';
import type { HomePaths } from '../home';
import { processLogger, type Logger } from '../logging/logger';
import { AsyncPredictionService } from '../services/async-predictions';
import { DeploymentService } from '../services/deployments';
import { DevelopmentService } from '../services/development';
import { EnvironmentService } from '../services/environments';
import { PromotionService } from '../services/promotions';
import { UsageService } from '../services/usage';
import { ModelService } from '../services/models';
import type { Health, TemporalUiLink } from '../shared/views';
import type { Store } from '../store/store';
import type { AsyncPredictionsClient, WorkflowsClient } from '../temporal/workflows-client';
import { DASHBOARD_DIR } from '../shared/project-paths';
import { LiveViews } from '../services/live';
import { ApiMetrics } from '../metrics/api-metrics';
import { METRICS_PATH } from '../metrics/exposition';
import { requireApiKey } from './auth';
import { dashboardRoutes } from './dashboard';
import { errorHandler, routeNotFound } from './errors';
import { requestLog } from './request-log';
import { asyncPredictionRoutes } from './routes/async-predictions';
import { deploymentRoutes } from './routes/deployments';
import { docsRoutes } from './routes/docs';
import { environmentRoutes } from './routes/environments';
import { eventRoutes } from './routes/events';
import { playgroundRoutes } from './routes/playground';
import { modelRoutes } from './routes/models';
import { secretRoutes } from './routes/secrets';
import { DEFAULT_MAX_CONCURRENT_UPLOADS, type PackageLimits } from '../shared/constants';
import { SecretService } from '../services/secrets';

/** What the API is built from. */
export interface AppDeps {
  store: Store;
  paths: HomePaths;
  workflows: WorkflowsClient;
  deployTimeoutSeconds: number;
  maxArchiveBytes: number;
  /** How much a pushed package may unpack to (checked here for development pushes; DEFAULT_PACKAGE_LIMITS when not given). */
  packageLimits?: PackageLimits;
  /** How many pushes are received at once (DEFAULT_MAX_CONCURRENT_UPLOADS when not given). */
  maxConcurrentUploads?: number;
  /** The interpreter development updates compare Python environments on. */
  basePython: string;
  /** Where the gateway listens, for predictions sent through the API (the dashboard's playground). */
  gatewayUrl?: string;
  /** The Temporal Web UI and namespace, for the dashboard's links to workflows (none when no UI is known). */
  temporalUi?: TemporalUiLink;
  /** Async predictions (their routes are mounted only when given), with the settings their workflows start with. */
  asyncPredictions?: { client: AsyncPredictionsClient; webhookRetrySeconds: number; wakeTimeoutSeconds: number };
  /** Where the bundled dashboard is (DASHBOARD_DIR unless a test says otherwise). */
  dashboardDir?: string;
  /** What `GET /metrics` serves (the API's own metrics from this store unless given). */
  metrics?: ApiMetrics;
  /** The access log and unexpected errors (the process logger by default). */
  logger?: Logger;
}

/**
 * Creates the API app: every request with a request id, an access log line and counted in the
 * metrics; /healthz, the dashboard's page and assets and the API's description
 * (/v1/openapi.json, /docs) without a key, everything else (/metrics too) behind Api-Key auth.
 */
export function createApp(deps: AppDeps): express.Express {
  const app = express();
  app.disable('x-powered-by');
  app.set('query parser', 'simple');
  app.use(requestLog(deps.logger ?? processLogger()));
  const metrics = deps.metrics ?? new ApiMetrics(deps.store);
  app.use(metrics.countRequests());
  app.get('/healthz', (_req, res) => {
    res.json({ status: 'ok' } satisfies Health);
  });
  app.use(dashboardRoutes(deps.dashboardDir ?? DASHBOARD_DIR));
  app.use(docsRoutes());
  app.use(requireApiKey(deps.store));
  app.get(METRICS_PATH, async (_req, res) => {
    res.type(metrics.registry.contentType).send(await metrics.registry.metrics());
  });
  // Every body but a push's multipart upload is JSON, whatever its content-type says: `curl -d`
  // sends form-urlencoded, and Baseten's routes take such bodies as JSON too.
  app.use(express.json({ limit: '1mb', type: (req) => !String(req.headers['content-type'] ?? '').startsWith('multipart/') }));

  const deployments = new DeploymentService(deps);
  const promotions = new PromotionService(deps);
  const environments = new EnvironmentService({ ...deps, deployments, promotions });
  const development = new DevelopmentService({ ...deps, deployments });
  app.use(
    deploymentRoutes({
      deployments,
      development,
      usage: new UsageService(deps.store),
      paths: deps.paths,
      maxArchiveBytes: deps.maxArchiveBytes,
      maxConcurrentUploads: deps.maxConcurrentUploads ?? DEFAULT_MAX_CONCURRENT_UPLOADS,
    }),
  );
  app.use(environmentRoutes({ store: deps.store, deployments, environments, promotions }));
  app.use(modelRoutes(new ModelService(deps.store)));
  if (deps.gatewayUrl) app.use(playgroundRoutes({ deployments, gatewayUrl: deps.gatewayUrl }));
  app.use(secretRoutes({ store: deps.store, secrets: new SecretService(deps) }));
  app.use(eventRoutes({ store: deps.store, deployments, live: new LiveViews({ store: deps.store, deployments, environments, temporalUi: deps.temporalUi }) }));

  if (deps.asyncPredictions) {
    const { client, ...settings } = deps.asyncPredictions;
    app.use(asyncPredictionRoutes(new AsyncPredictionService({ store: deps.store, asyncPredictions: client, ...settings })));
  }

  app.use(routeNotFound);
  app.use(errorHandler);
  return app;
}
