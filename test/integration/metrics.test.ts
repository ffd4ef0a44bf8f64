/**
 * Prometheus metrics on the real stack: traffic through the gateway to two deployments and a
 * rolling promotion under load, then `GET /metrics` on the gateway, the API and the worker,
 * whose numbers must match what was sent and what the promotion did; and every /metrics
 * refusing a request without a valid key.
 */
import { strict as assert } from 'node:assert';
import * as path from 'node:path';
import { LoadGenerator } from '../../bench/loadgen';
import { PROJECT_ROOT } from '../../src/shared/project-paths';
import { eventually } from '../helpers/ports';
import { declaredMetrics, parsePrometheusText, seriesOf, sumOf, type PrometheusSample } from '../helpers/prometheus';
import { TestStack } from '../helpers/stack';

interface Pushed {
  id: string;
  model_id: string;
}

describe('Prometheus metrics (real stack)', function () {
  this.timeout(600_000);
  let stack: TestStack;
  let first: Pushed;

  async function push(): Promise<Pushed> {
    const result = await stack.cli(['push', path.join(PROJECT_ROOT, 'examples', 'echo'), '--model-name', 'metered', '--wait', '--output', 'json']);
    assert.equal(result.code, 0, `${result.stdout}\n${result.stderr}`);
    return JSON.parse(result.stdout);
  }

  async function scrape(url: string, authorization = `Api-Key ${stack.apiKey}`): Promise<{ text: string; samples: PrometheusSample[] }> {
    const response = await fetch(url, { headers: { authorization } });
    const text = await response.text();
    assert.equal(response.status, 200, text);
    assert.match(response.headers.get('content-type') ?? '', /^text\/plain; version=0\.0\.4/);
    return { text, samples: parsePrometheusText(text) };
  }

  const urls = (): Record<string, string> => ({
    gateway: `${stack.gatewayUrl}/metrics`,
    api: `${stack.apiUrl}/metrics`,
    worker: stack.workerMetricsUrl,
  });

  before(async () => {
    stack = await TestStack.create();
    await stack.start();
    first = await push();
  });

  after(async () => {
    await stack?.destroy();
  });

  it('refuses /metrics without a valid key on the gateway, the API and the worker (401 JSON), and serves it with one as Api-Key or Bearer', async () => {
    assert.match(stack.log, /Metrics +http:\/\/127\.0\.0\.1:\d+\/metrics .*\/metrics .*\/metrics/, 'npm start prints the three metrics URLs');
    for (const [process, url] of Object.entries(urls())) {
      const refusals: Record<string, string>[] = [{}, { authorization: 'Api-Key gtk_not-a-key-of-this-stack' }, { authorization: 'Basic YWRtaW46YWRtaW4=' }];
      for (const headers of refusals) {
        const refused = await fetch(url, { headers });
        assert.equal(refused.status, 401, `${process} ${JSON.stringify(headers)}`);
        assert.match(refused.headers.get('content-type') ?? '', /^application\/json/);
        const body = (await refused.json()) as { error: { code: string; message: string } };
        assert.equal(body.error.code, 'unauthorized');
        assert.doesNotMatch(JSON.stringify(body), /gantry_/, 'no metric leaks into a refusal');
      }
      const bearer = await scrape(url, `Bearer ${stack.apiKey}`);
      const processLabel = process === 'gateway' ? 'node' : process;
      assert.ok(sumOf(bearer.samples, 'gantry_process_cpu_user_seconds_total', { process: processLabel }) > 0, `${process}: process metrics labelled process="${processLabel}"`);
    }
  });

  it('counts traffic to both deployments and a rolling promotion under load, on the gateway, the API and the worker', async () => {
    const modelId = first.model_id;
    // Traffic to the first deployment through production, and addressed to it directly.
    for (let i = 0; i < 10; i++) assert.equal((await stack.predict(`/models/${modelId}/production/predict`, { i })).deploymentId, first.id);
    for (let i = 0; i < 3; i++) assert.equal((await stack.predict(`/models/${modelId}/deployment/${first.id}/predict`, { i })).status, 200);
    assert.equal((await stack.predict('/models/nosuchmodel/production/predict', {})).status, 404);

    const second = await push();
    for (let i = 0; i < 4; i++) assert.equal((await stack.predict(`/models/${modelId}/deployment/${second.id}/predict`, { i })).deploymentId, second.id);
    const asyncRequest = await stack.api('POST', `/models/${modelId}/production/async_predict`, { model_input: { hello: 'queue' } });
    assert.equal(asyncRequest.status, 201, JSON.stringify(asyncRequest.body));
    // Its workflow calls the first deployment through the gateway (addressed to the deployment).
    await eventually(
      'the async request to succeed',
      async () => {
        const status = (await stack.api('GET', `/models/${modelId}/async_request/${asyncRequest.body.request_id}`)).body.status;
        return status === 'SUCCEEDED' ? true : undefined;
      },
      60_000,
      200,
    );

    // A rolling promotion of the second deployment under steady load.
    const settings = await stack.api('PATCH', `/v1/models/${modelId}/environments/production`, {
      promotion_settings: { rolling_deploy_config: { max_surge_percent: 50, stabilization_time_seconds: 2 } },
    });
    assert.equal(settings.status, 200, JSON.stringify(settings.body));
    const load = new LoadGenerator({ url: `${stack.gatewayUrl}/models/${modelId}/production/predict`, apiKey: stack.apiKey, rate: 20 });
    load.start();
    await new Promise((resolve) => setTimeout(resolve, 500));
    const promoted = await stack.api('POST', `/v1/models/${modelId}/environments/production/promote`, { deployment_id: second.id });
    assert.equal(promoted.status, 202, JSON.stringify(promoted.body));
    const promotionId: string = promoted.body.id;

    // While it is in flight, the API's metrics say so.
    await eventually(
      'the promotion in flight in the API metrics',
      async () => {
        const { samples } = await scrape(urls().api!);
        const info = seriesOf(samples, 'gantry_promotion_info', { model_id: modelId, environment: 'production' });
        return sumOf(samples, 'gantry_promotion_in_flight', { model_id: modelId, environment: 'production' }) === 1 &&
          info.length === 1 &&
          info[0]!.labels.promotion_id === promotionId &&
          info[0]!.labels.candidate_deployment_id === second.id
          ? true
          : undefined;
      },
      60_000,
      100,
    );
    const ended = await eventually(
      'the promotion to end',
      async () => {
        const p = (await stack.api('GET', `/v1/models/${modelId}/environments/production/promotion`)).body;
        return ['SUCCEEDED', 'FAILED', 'CANCELED'].includes(p.status) ? p : undefined;
      },
      120_000,
      100,
    );
    assert.equal(ended.status, 'SUCCEEDED', ended.message ?? '');
    await new Promise((resolve) => setTimeout(resolve, 500));
    const summary = await load.stop();
    assert.equal(summary.failed, 0, JSON.stringify(summary.byStatus));
    const servedFirst = summary.byDeployment[first.id] ?? 0;
    const servedSecond = summary.byDeployment[second.id] ?? 0;
    assert.ok(servedFirst > 0 && servedSecond > 0, `the load reached both deployments: ${JSON.stringify(summary.byDeployment)}`);
    for (let i = 0; i < 5; i++) assert.equal((await stack.predict(`/models/${modelId}/production/predict`, { i })).deploymentId, second.id);

    // The gateway: exactly what was sent, by deployment, environment and status.
    const production = { model_id: modelId, environment: 'production' };
    const gateway = await eventually(
      'the gateway to have counted every answer',
      async () => {
        const scraped = await scrape(urls().gateway!);
        return sumOf(scraped.samples, 'gantry_gateway_requests_total', { ...production, deployment_id: second.id }) === servedSecond + 5 ? scraped.samples : undefined;
      },
      10_000,
      100,
    );
    const requests = (labels: Record<string, string>): number => sumOf(gateway, 'gantry_gateway_requests_total', labels);
    assert.equal(requests({ ...production, deployment_id: first.id, status_code: '200' }), 10 + servedFirst);
    assert.equal(requests({ ...production, deployment_id: second.id, status_code: '200' }), servedSecond + 5);
    assert.equal(requests({ model_id: modelId, deployment_id: first.id, environment: '', status_code: '200' }), 3 + 1, 'three predicts and the async request');
    assert.equal(requests({ model_id: modelId, deployment_id: second.id, environment: '', status_code: '200' }), 4);
    assert.equal(requests({ model_id: '', deployment_id: '', environment: '', status_code: '404' }), 1);
    assert.equal(requests({ model_id: modelId }), 10 + 3 + 1 + 4 + 5 + summary.answered, 'no other answer counted for the model');
    assert.equal(sumOf(gateway, 'gantry_gateway_request_duration_seconds_count', { ...production, deployment_id: first.id }), 10 + servedFirst);
    assert.ok(sumOf(gateway, 'gantry_gateway_request_duration_seconds_sum', { ...production, deployment_id: first.id }) > 0);
    assert.equal(sumOf(gateway, 'gantry_gateway_requests_in_flight', { model_id: modelId }), 0);
    assert.equal(sumOf(gateway, 'gantry_gateway_upstream_errors_total', { model_id: modelId }), 0);
    assert.equal(sumOf(gateway, 'gantry_gateway_request_duration_seconds_bucket', { ...production, deployment_id: second.id, le: '+Inf' }), servedSecond + 5);

    // The API: the promotion's progress and the control plane's state, read from the store.
    const api = await eventually(
      'the second deployment alone ready in the API metrics',
      async () => {
        const { samples } = await scrape(urls().api!);
        const ready = (id: string): number => sumOf(samples, 'gantry_deployment_replicas_ready', { model_id: modelId, deployment_id: id });
        return ready(second.id) === 1 && ready(first.id) === 0 && sumOf(samples, 'gantry_async_requests', { model_id: modelId, status: 'SUCCEEDED' }) === 1 ? samples : undefined;
      },
      60_000,
      200,
    );
    assert.equal(sumOf(api, 'gantry_promotions', { ...production, status: 'SUCCEEDED' }), 1);
    assert.equal(sumOf(api, 'gantry_promotions', production), 1);
    assert.equal(sumOf(api, 'gantry_promotion_in_flight', production), 0);
    assert.equal(sumOf(api, 'gantry_promotion_traffic_percent', production), 100);
    const totalSteps = sumOf(api, 'gantry_promotion_total_steps', production);
    assert.ok(totalSteps >= 1, `total steps ${totalSteps}`);
    assert.equal(sumOf(api, 'gantry_promotion_step', production), totalSteps);
    assert.deepEqual(
      seriesOf(api, 'gantry_promotion_info', production).map((s) => [s.labels.promotion_id, s.labels.status, s.labels.candidate_deployment_id, s.labels.previous_deployment_id]),
      [[promotionId, 'SUCCEEDED', second.id, first.id]],
    );
    assert.equal(sumOf(api, 'gantry_deployment_replicas_desired', { model_id: modelId, deployment_id: second.id }), 1);
    assert.equal(sumOf(api, 'gantry_deployment_replicas_desired', { model_id: modelId, deployment_id: first.id }), 0, 'the previous deployment scaled to zero');
    assert.equal(sumOf(api, 'gantry_deployments', { model_id: modelId }), 2);
    assert.equal(sumOf(api, 'gantry_deployments', { model_id: modelId, status: 'ACTIVE' }), 1);
    assert.equal(sumOf(api, 'gantry_async_requests', { model_id: modelId }), 1);
    assert.equal(sumOf(api, 'gantry_api_requests_total', { route: '/v1/models/:model/environments/:env/promote', method: 'POST', status_code: '202' }), 1);
    assert.equal(sumOf(api, 'gantry_api_requests_total', { route: '/models/:model/production/async_predict', method: 'POST', status_code: '201' }), 1);
    assert.ok(sumOf(api, 'gantry_api_requests_total', { route: 'unmatched', status_code: '401' }) >= 3, 'the refused scrapes of the first test');
    assert.ok(
      seriesOf(api, 'gantry_api_requests_total').every((s) => !s.labels.route!.includes(modelId)),
      'routes are patterns, never raw paths',
    );
    assert.equal(sumOf(api, 'gantry_api_request_duration_seconds_count', { route: '/v1/models/:model/environments/:env/promote', method: 'POST' }), 1);

    // The worker: the activities of two deploys and a promotion, and the workflows that closed.
    const worker = await eventually(
      'the worker to have counted the closed workflows',
      async () => {
        const scraped = await scrape(urls().worker!);
        return sumOf(scraped.samples, 'gantry_worker_workflows_closed_total', { workflow_type: 'promotionWorkflow', outcome: 'completed' }) === 1 &&
          sumOf(scraped.samples, 'gantry_worker_workflows_closed_total', { workflow_type: 'deployWorkflow', outcome: 'completed' }) === 2
          ? scraped
          : undefined;
      },
      30_000,
      250,
    );
    const activities = (type: string, outcome = 'completed'): number => sumOf(worker.samples, 'gantry_worker_activity_executions_total', { activity_type: type, outcome });
    assert.equal(activities('beginPromotion'), 1);
    assert.equal(activities('setCurrentDeployment'), 1);
    assert.ok(activities('setTraffic') >= totalSteps, `setTraffic ran ${activities('setTraffic')} times for ${totalSteps} steps`);
    assert.ok(activities('awaitRouteApplied') >= totalSteps);
    assert.equal(sumOf(worker.samples, 'gantry_worker_activity_executions_total', { outcome: 'failed' }), 0);
    assert.equal(sumOf(worker.samples, 'gantry_worker_activity_duration_seconds_count', { activity_type: 'beginPromotion' }), 1);
    assert.equal(sumOf(worker.samples, 'gantry_worker_activities_running'), 0);
    assert.ok(declaredMetrics(worker.text).has('gantry_worker_workflow_task_failures_total'));
    assert.equal(sumOf(worker.samples, 'gantry_worker_workflow_task_failures_total'), 0);
  });
});
