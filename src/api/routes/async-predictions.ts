/** Async prediction routes, at Baseten's inference paths (no /v1), and the status route the CLI uses. */
import { Router, type Request } from 'express';
import { asyncPredictRequestSchema, describeIssues } from '../../shared/schemas';
import { PRODUCTION_TARGET, type AsyncPredictionService, type AsyncTarget } from '../../services/async-predictions';
import { ApiError } from '../errors';

/** The four ways Baseten's paths name a deployment, each with how to read its target from the params. */
const TARGETS: { path: string; target: (req: Request) => AsyncTarget }[] = [
  { path: '/models/:model/production', target: () => PRODUCTION_TARGET },
  { path: '/models/:model/development', target: () => ({ kind: 'development' }) },
  { path: '/models/:model/environments/:env', target: (req) => ({ kind: 'environment', name: String((req.params as Record<string, string>).env) }) },
  { path: '/models/:model/deployment/:deployment', target: (req) => ({ kind: 'deployment', id: String((req.params as Record<string, string>).deployment) }) },
];

/** The model a route names. */
const modelOf = (req: Request): string => String((req.params as Record<string, string>).model);

/** POST …/async_predict, GET …/async_queue_status, GET and DELETE /models/{m}/async_request/{id}, GET /v1/async_requests/{id}. */
export function asyncPredictionRoutes(service: AsyncPredictionService): Router {
  const router = Router();

  for (const { path, target } of TARGETS) {
    router.post(`${path}/async_predict`, async (req, res) => {
      const parsed = asyncPredictRequestSchema.safeParse(req.body ?? {});
      if (!parsed.success) {
        const details = describeIssues(parsed.error);
        throw new ApiError(400, 'bad_request', `invalid async predict request: ${details.map((d) => `${d.field}: ${d.message}`).join('; ')}`, details);
      }
      res.status(201).json(await service.submit(modelOf(req), target(req), parsed.data));
    });
    router.get(`${path}/async_queue_status`, async (req, res) => {
      res.json(await service.queueStatus(modelOf(req), target(req)));
    });
  }

  router.get('/models/:model/async_request/:request', async (req, res) => {
    res.json(await service.view(String(req.params.request), String(req.params.model)));
  });

  router.delete('/models/:model/async_request/:request', async (req, res) => {
    res.json(await service.cancel(String(req.params.model), String(req.params.request)));
  });

  router.get('/v1/async_requests/:request', async (req, res) => {
    res.json(await service.view(String(req.params.request)));
  });

  return router;
}
