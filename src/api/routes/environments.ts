/** Routes for environments, promotions and the audit log. */
import { Router } from 'express';
import type { DeploymentService } from '../../services/deployments';
import type { EnvironmentService } from '../../services/environments';
import type { PromotionService } from '../../services/promotions';
import type { Store } from '../../store/store';
import { createEnvironmentSchema, environmentNameSchema, promoteRequestSchema, promotionActions, updateEnvironmentSchema, type PromotionAction } from '../../shared/schemas';
import { actorOf } from '../auth';
import { parseInput } from '../validation';

/** What the environment routes need. */
export interface EnvironmentRoutesDeps {
  store: Store;
  deployments: DeploymentService;
  environments: EnvironmentService;
  promotions: PromotionService;
}

/** /v1/models/{m}/environments/..., /v1/models/{m}/audit_logs. */
export function environmentRoutes({ store, deployments, environments, promotions }: EnvironmentRoutesDeps): Router {
  const router = Router();

  router.get('/v1/models/:model/environments', async (req, res) => {
    const model = await deployments.requireModel(req.params.model);
    res.json({ environments: await environments.list(model) });
  });

  router.post('/v1/models/:model/environments', async (req, res) => {
    const body = parseInput(createEnvironmentSchema, req.body ?? {}, 'environment');
    const model = await deployments.requireModel(req.params.model);
    res.status(201).json(await environments.create(model, body.name, body.promotion_settings, actorOf(res)));
  });

  router.get('/v1/models/:model/environments/:env', async (req, res) => {
    const model = await deployments.requireModel(req.params.model);
    res.json(await environments.view(model, await environments.require(model, req.params.env)));
  });

  router.patch('/v1/models/:model/environments/:env', async (req, res) => {
    const body = parseInput(updateEnvironmentSchema, req.body ?? {}, 'environment update');
    const model = await deployments.requireModel(req.params.model);
    res.json(await environments.updateSettings(model, req.params.env, body.promotion_settings, actorOf(res)));
  });

  router.delete('/v1/models/:model/environments/:env', async (req, res) => {
    const model = await deployments.requireModel(req.params.model);
    await environments.delete(model, req.params.env, actorOf(res));
    res.status(204).end();
  });

  router.post('/v1/models/:model/environments/:env/promote', async (req, res) => {
    const body = parseInput(promoteRequestSchema, req.body ?? {}, 'promote request');
    parseInput(environmentNameSchema, req.params.env, 'environment name');
    const model = await deployments.requireModel(req.params.model);
    const deployment = await deployments.resolve(model, body.deployment_id);
    res.status(202).json(await promotions.promote(model, req.params.env, deployment, actorOf(res)));
  });

  router.get('/v1/models/:model/environments/:env/promotions', async (req, res) => {
    const model = await deployments.requireModel(req.params.model);
    await environments.require(model, req.params.env);
    res.json({ promotions: await promotions.history(model, req.params.env) });
  });

  router.get('/v1/models/:model/environments/:env/promotion', async (req, res) => {
    const model = await deployments.requireModel(req.params.model);
    await environments.require(model, req.params.env);
    res.json(await promotions.current(model, req.params.env));
  });

  for (const action of promotionActions) {
    router.post(`/v1/models/:model/environments/:env/${action}_promotion`, async (req, res) => {
      const model = await deployments.requireModel(req.params.model);
      await environments.require(model, req.params.env);
      const { done, promotion } = await promotions.act(model, req.params.env, action as PromotionAction, actorOf(res));
      res.status(done ? 200 : 202).json(promotion);
    });
  }

  router.get('/v1/models/:model/audit_logs', async (req, res) => {
    const model = await deployments.requireModel(req.params.model);
    res.json({ audit_logs: await store.listAudit(model.id) });
  });

  return router;
}
