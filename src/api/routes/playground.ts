/**
 * `POST /v1/models/{model}/deployments/{ref}/predict`: a prediction sent through the API to the
 * gateway, for the dashboard's playground (same origin as the page, so the browser needs no
 * CORS grant on the gateway). It goes the way any client's request goes: the caller's key, the
 * deployment's path on the gateway, the gateway's answer and `x-gantry-deployment-id` as they are
 * (a streamed answer passed on chunk by chunk).
 */
import { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import type { ReadableStream as WebReadableStream } from 'node:stream/web';
import { Router } from 'express';
import type { DeploymentService } from '../../services/deployments';
import { DEPLOYMENT_ID_HEADER } from '../../shared/constants';
import { ApiError } from '../errors';
import { REQUEST_ID_HEADER } from '../../logging/request-id';

/** What the playground route needs. */
export interface PlaygroundRoutesDeps {
  deployments: DeploymentService;
  /** Where the gateway listens, e.g. http://127.0.0.1:8081. */
  gatewayUrl: string;
}

/** /v1/models/{m}/deployments/{ref}/predict. */
export function playgroundRoutes({ deployments, gatewayUrl }: PlaygroundRoutesDeps): Router {
  const router = Router();
  router.post('/v1/models/:model/deployments/:ref/predict', async (req, res) => {
    const model = await deployments.requireModel(req.params.model);
    const deployment = await deployments.resolve(model, req.params.ref);
    const controller = new AbortController();
    res.on('close', () => controller.abort());
    let answer: Response;
    try {
      answer = await fetch(`${gatewayUrl}/models/${model.id}/deployment/${deployment.id}/predict`, {
        method: 'POST',
        // The API's request id goes on to the gateway (and the replica): one id for the whole call.
        headers: { authorization: req.header('authorization') ?? '', 'content-type': 'application/json', [REQUEST_ID_HEADER]: String(res.locals.requestId ?? '') },
        body: JSON.stringify(req.body ?? null),
        signal: controller.signal,
      });
    } catch (error) {
      throw new ApiError(502, 'gateway_unreachable', `the gateway at ${gatewayUrl} did not answer: ${(error as Error).message}`);
    }
    const servedBy = answer.headers.get(DEPLOYMENT_ID_HEADER);
    if (servedBy) res.setHeader(DEPLOYMENT_ID_HEADER, servedBy);
    res.status(answer.status).type(answer.headers.get('content-type') ?? 'application/octet-stream');
    const length = answer.headers.get('content-length');
    if (length !== null || !answer.body) {
      res.send(Buffer.from(await answer.arrayBuffer()));
      return;
    }
    // A streamed answer: each chunk goes on to the browser as the gateway sends it.
    res.flushHeaders();
    res.socket?.setNoDelay(true);
    try {
      await pipeline(Readable.fromWeb(answer.body as WebReadableStream<Uint8Array>), res);
    } catch {
      // The gateway's stream broke off or the browser went away: the answer ends where it stopped.
      res.destroy();
    }
  });
  return router;
}
