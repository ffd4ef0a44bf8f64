/** Routes for secrets (Baseten's /v1/secrets) and the audit entries of no model. */
import { Router } from 'express';
import type { SecretService } from '../../services/secrets';
import { secretNameSchema, upsertSecretSchema } from '../../shared/schemas';
import type { Store } from '../../store/store';
import { actorOf } from '../auth';
import { parseInput } from '../validation';

/** GET/POST /v1/secrets, DELETE /v1/secrets/{name}, GET /v1/audit_logs. */
export function secretRoutes({ store, secrets }: { store: Store; secrets: SecretService }): Router {
  const router = Router();
  router.get('/v1/secrets', async (_req, res) => {
    res.json({ secrets: await secrets.list() });
  });
  router.post('/v1/secrets', async (req, res) => {
    const body = parseInput(upsertSecretSchema, req.body ?? {}, 'secret');
    res.json(await secrets.set(body, actorOf(res)));
  });
  router.delete('/v1/secrets/:name', async (req, res) => {
    const name = parseInput(secretNameSchema, req.params.name, 'secret name');
    res.json(await secrets.delete(name, actorOf(res)));
  });
  router.get('/v1/audit_logs', async (_req, res) => {
    res.json({ audit_logs: await store.listAudit(null) });
  });
  return router;
}
