/** Routes for models. */
import { Router } from 'express';
import type { ModelService } from '../../services/models';

/** GET /v1/models and /v1/models/{m}. */
export function modelRoutes(models: ModelService): Router {
  const router = Router();
  router.get('/v1/models', async (_req, res) => {
    res.json({ models: await models.list() });
  });
  router.get('/v1/models/:model', async (req, res) => {
    res.json(await models.get(req.params.model));
  });
  return router;
}
