/** Routes for pushes and a model's deployments. */
import * as fs from 'node:fs';
import { type Request, type Response, Router } from 'express';
import type { HomePaths } from '../../home';
import type { DeploymentService } from '../../services/deployments';
import { autoscalingSettingsPatchSchema, deploymentListQuerySchema, logsQuerySchema, pushOptionsSchema, updateDeploymentSchema, usageQuerySchema } from '../../shared/schemas';
import type { DevelopmentService } from '../../services/development';
import type { DevelopmentPushAnswer } from '../../shared/views';
import type { UsageService } from '../../services/usage';
import { actorOf } from '../auth';
import { ApiError } from '../errors';
import { receivePush } from '../push-upload';
import { openEventStream, sendEvent } from '../sse';
import { parseInput } from '../validation';

/** What the deployment routes need. */
export interface DeploymentRoutesDeps {
  deployments: DeploymentService;
  development: DevelopmentService;
  usage: UsageService;
  paths: HomePaths;
  maxArchiveBytes: number;
  /** How many pushes are received and handled at once; more are answered 503 with Retry-After. */
  maxConcurrentUploads: number;
}

/** How long a client refused for too many uploads is told to wait (seconds). */
const UPLOAD_RETRY_AFTER_SECONDS = 5;

/** POST /v1/deployments and /v1/models/{m}/deployments/... */
export function deploymentRoutes({ deployments, development, usage, paths, maxArchiveBytes, maxConcurrentUploads }: DeploymentRoutesDeps): Router {
  const router = Router();
  let uploadsUnderWay = 0;

  router.post('/v1/deployments', async (req, res) => {
    if (uploadsUnderWay >= maxConcurrentUploads) {
      res.setHeader('Retry-After', String(UPLOAD_RETRY_AFTER_SECONDS));
      throw new ApiError(
        503,
        'too_many_uploads',
        `${maxConcurrentUploads} pushes are being received already (GANTRY_MAX_CONCURRENT_UPLOADS); try again in ${UPLOAD_RETRY_AFTER_SECONDS} s`,
      );
    }
    uploadsUnderWay++;
    try {
      await handlePush(req, res);
    } finally {
      uploadsUnderWay--;
    }
  });

  const handlePush = async (req: Request, res: Response): Promise<void> => {
    const upload = await receivePush(req, paths.tmp, maxArchiveBytes);
    try {
      if (upload.optionsText === undefined) throw new ApiError(400, 'bad_request', 'the push has no options field');
      let options: unknown;
      try {
        options = JSON.parse(upload.optionsText);
      } catch (error) {
        throw new ApiError(400, 'bad_request', `options is not valid JSON: ${(error as Error).message}`);
      }
      const parsed = parseInput(pushOptionsSchema, options, 'push options');
      if (parsed.development) {
        const result = await development.push(upload, parsed, actorOf(res));
        const { deployment, ...update } = result;
        res.status(result.update === 'created' ? 201 : 200).json({ ...deployment, development_update: update } satisfies DevelopmentPushAnswer);
      } else {
        res.status(201).json(await deployments.push(upload, parsed, actorOf(res)));
      }
    } finally {
      fs.rmSync(upload.archiveFile, { force: true }); // moved away on success
    }
  };

  router.get('/v1/models/:model/deployments', async (req, res) => {
    const { label } = parseInput(deploymentListQuerySchema, req.query, 'deployment filters');
    const model = await deployments.requireModel(req.params.model);
    const list = await deployments.views(model, await deployments.listMatching(model, label));
    res.json({ deployments: list });
  });

  router.patch('/v1/models/:model/deployments/:ref', async (req, res) => {
    const update = parseInput(updateDeploymentSchema, req.body ?? {}, 'deployment update');
    const model = await deployments.requireModel(req.params.model);
    res.json(await deployments.update(model, req.params.ref, update, actorOf(res)));
  });

  router.delete('/v1/models/:model/deployments/:ref', async (req, res) => {
    const model = await deployments.requireModel(req.params.model);
    await deployments.delete(model, req.params.ref, actorOf(res));
    res.status(204).end();
  });

  router.post('/v1/models/:model/deployments/:ref/deactivate', async (req, res) => {
    const model = await deployments.requireModel(req.params.model);
    res.json(await deployments.deactivate(model, req.params.ref, actorOf(res)));
  });

  router.post('/v1/models/:model/deployments/:ref/activate', async (req, res) => {
    const model = await deployments.requireModel(req.params.model);
    res.json(await deployments.activate(model, req.params.ref, actorOf(res)));
  });

  router.get('/v1/usage', async (req, res) => {
    res.json(await usage.report(parseInput(usageQuerySchema, req.query, 'usage range')));
  });

  router.post('/v1/models/:model/deployments/development/watch_heartbeat', async (req, res) => {
    const model = await deployments.requireModel(req.params.model);
    res.json(await development.heartbeat(model));
  });

  router.post('/v1/models/:model/deployments/development/promote', async (req, res) => {
    const model = await deployments.requireModel(req.params.model);
    res.status(201).json(await development.promote(model, actorOf(res)));
  });

  router.get('/v1/models/:model/deployments/:ref', async (req, res) => {
    const model = await deployments.requireModel(req.params.model);
    res.json(await deployments.view(model, await deployments.resolve(model, req.params.ref)));
  });

  router.get('/v1/models/:model/deployments/:ref/logs', async (req, res) => {
    const { tail, follow } = parseInput(logsQuerySchema, req.query, 'logs query');
    const model = await deployments.requireModel(req.params.model);
    if (!follow) {
      res.json(await deployments.logs(model, req.params.ref, tail));
      return;
    }
    const deployment = await deployments.resolve(model, req.params.ref);
    openEventStream(res);
    let sent = false;
    const stop = deployments.followLogs(deployment, tail, (entries) => {
      sent = true;
      sendEvent(res, 'log', JSON.stringify({ entries }));
    });
    // An empty log still answers its first event, so the reader knows it is following.
    if (!sent) sendEvent(res, 'log', JSON.stringify({ entries: [] }));
    res.on('close', stop);
  });

  router.patch('/v1/models/:model/deployments/:ref/autoscaling_settings', async (req, res) => {
    const patch = parseInput(autoscalingSettingsPatchSchema, req.body ?? {}, 'autoscaling settings');
    const model = await deployments.requireModel(req.params.model);
    res.json(await deployments.updateAutoscaling(model, req.params.ref, patch, actorOf(res)));
  });

  return router;
}
