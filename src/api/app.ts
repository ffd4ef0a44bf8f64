/** The management API (DESIGN §4) as an Express app, built from its dependencies. */
import express from 'express';
import type { HomePaths } from '../home';
import { DeploymentService } from '../services/deployments';
import { ModelService } from '../services/models';
import type { Store } from '../store/store';
import type { WorkflowsClient } from '../temporal/workflows-client';
import { requireApiKey } from './auth';
import { errorHandler, routeNotFound } from './errors';
import { deploymentRoutes } from './routes/deployments';
import { modelRoutes } from './routes/models';

/** What the API is built from. */
export interface AppDeps {
  store: Store;
  paths: HomePaths;
  workflows: WorkflowsClient;
  deployTimeoutSeconds: number;
  maxArchiveBytes: number;
}

/** Creates the API app: /healthz without a key, everything else behind Api-Key auth. */
export function createApp(deps: AppDeps): express.Express {
  const app = express();
  app.disable('x-powered-by');
  app.set('query parser', 'simple');
  app.get('/healthz', (_req, res) => {
    res.json({ status: 'ok' });
  });
  app.use(requireApiKey(deps.store));
  app.use(express.json({ limit: '1mb' }));

  const deployments = new DeploymentService(deps);
  app.use(deploymentRoutes({ deployments, paths: deps.paths, maxArchiveBytes: deps.maxArchiveBytes }));
  app.use(modelRoutes(new ModelService(deps.store)));

  app.use(routeNotFound);
  app.use(errorHandler);
  return app;
}
