/**
 * Records the event history of every workflow path on a real Temporal dev server (the CLI that
 * `npm install` put in .venv), each workflow driven by the in-memory control plane of the
 * workflow tests, and writes them to test/replay/histories/<set>/<path>.json. The replay suite
 * (test/replay/replay.test.ts) replays every file against the current workflow code, so a change
 * to a workflow's command sequence that is not behind `patched()` fails `npm test`.
 *
 * Recording is a deliberate step, never part of CI: a set recorded from one version of the code
 * stands for that version's workflows still running somewhere when Gantry is upgraded.
 *
 *   npm run build && node dist/test/replay/record-histories.js <set> [path…]
 */
import { execFileSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import * as zlib from 'node:zlib';
import type { WorkflowHandle } from '@temporalio/client';
import { ApplicationFailure } from '@temporalio/common';
import { TestWorkflowEnvironment } from '@temporalio/testing';
import { bundleWorkflowCode, Worker, type WorkflowBundleWithSourceMap } from '@temporalio/worker';
import { BUILD_FAILED, REPLICAS_NOT_READY } from '../../src/contracts/failures';
import { PROJECT_ROOT } from '../../src/shared/project-paths';
import { modelConfigSchema, type PromotionSettings } from '../../src/shared/schemas';
import { TEMPORAL_CLI } from '../../src/stack/temporal-dev-server';
import { asyncPredictionWorkflow, deployWorkflow, developmentUpdateWorkflow, promotionWorkflow } from '../../src/workflows';
import { asyncCancelSignal, asyncDispatchedSignal } from '../../src/contracts/messages';
import { FakeAsyncRequest, type FakeAsyncBehaviour } from '../helpers/fake-async';
import { promotionStatusQuery, type PromotionStatus } from '../../src/contracts/messages';
import { CANDIDATE, FakeCluster, FakeControlPlane, settings } from '../helpers/fake-cluster';
import { installQuietRuntime } from '../helpers/time-skipping';
import { PROMOTION_ACTIONS, sendAction, type PromotionActionKey } from './promotion-actions';
import type { AsyncPredictionInput } from '../../src/contracts/workflows';

/** Where the recorded sets live. */
export const HISTORIES_DIR = path.join(PROJECT_ROOT, 'test', 'replay', 'histories');

/** What a recording scenario gets to run its workflow. */
interface Recorder {
  env: TestWorkflowEnvironment;
  bundle: WorkflowBundleWithSourceMap;
  taskQueue: string;
}

/** One workflow path: runs it to its end on the dev server and returns its workflow id. */
type Scenario = (recorder: Recorder) => Promise<string>;

const silent = { log() {}, trace() {}, debug() {}, info() {}, warn() {}, error() {} };

async function until(handle: WorkflowHandle, done: (status: PromotionStatus) => boolean, what: string): Promise<void> {
  const deadline = Date.now() + 60_000;
  for (;;) {
    const status = await handle.query(promotionStatusQuery);
    if (done(status)) return;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}; last status ${JSON.stringify(status)}`);
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
}

async function blockedOn(cluster: FakeCluster, key: string): Promise<void> {
  const deadline = Date.now() + 60_000;
  while (cluster.blockedOn !== key) {
    if (Date.now() > deadline) throw new Error(`the workflow never reached ${key}`);
    await new Promise((resolve) => setTimeout(resolve, 10));
  }
}

/** Runs a promotion against a fake cluster; `drive` steers it while it runs. */
function promotion(
  promotionSettings: PromotionSettings,
  drive: (handle: WorkflowHandle<typeof promotionWorkflow>, cluster: FakeCluster) => Promise<void> = async () => {},
  prepare: (cluster: FakeCluster) => void = () => {},
): Scenario {
  return async ({ env, bundle, taskQueue }) => {
    const cluster = new FakeCluster();
    prepare(cluster);
    const worker = await Worker.create({ connection: env.nativeConnection, taskQueue, workflowBundle: bundle, activities: cluster.activities() });
    const workflowId = `promotion:model:${taskQueue}`;
    await worker.runUntil(async () => {
      const handle = await env.client.workflow.start(promotionWorkflow, {
        taskQueue,
        workflowId,
        args: [{ promotionId: `p-${taskQueue}`, modelId: 'model', environment: 'production', candidateDeploymentId: CANDIDATE, settings: promotionSettings, actor: 'alice' }],
      });
      await drive(handle, cluster);
      await handle.result();
    });
    return workflowId;
  };
}

const act = (handle: WorkflowHandle, action: PromotionActionKey, via: 'update' | 'signal' = 'update'): Promise<void> => sendAction(handle, action, 'bob', via);

/** After the first step (traffic at 50 %), while the long stabilization wait runs, sends `action`. */
const afterFirstStep =
  (...actions: PromotionActionKey[]) =>
  async (handle: WorkflowHandle<typeof promotionWorkflow>): Promise<void> => {
    await until(handle, (s) => s.step >= 1 && s.percent_traffic_to_new_version === 50, 'the first step');
    for (const action of actions) {
      await act(handle, action);
      await until(handle, (s) => s.actions.some((a) => a.action === PROMOTION_ACTIONS[action] && a.actor === 'bob'), `${action} to be received`);
    }
  };

/** Runs a deploy against a fake control plane. */
function deploy(behaviour: ConstructorParameters<typeof FakeControlPlane>[0], promoteTo?: string): Scenario {
  return async ({ env, bundle, taskQueue }) => {
    const plane = new FakeControlPlane(behaviour);
    const worker = await Worker.create({ connection: env.nativeConnection, taskQueue, workflowBundle: bundle, activities: plane.activities() });
    const workflowId = `deploy:${taskQueue}`;
    await worker.runUntil(
      env.client.workflow.execute(deployWorkflow, { taskQueue, workflowId, args: [{ deploymentId: taskQueue, deployTimeoutSeconds: 60, promoteTo, actor: 'alice' }] }),
    );
    return workflowId;
  };
}

/** Runs a development update (a rebuild, or with `reload` a live reload) against a fake control plane; `cancel` cancels it while its replica is awaited. */
function developmentUpdate(behaviour: ConstructorParameters<typeof FakeControlPlane>[0], mode?: 'reload', cancel = false): Scenario {
  return async ({ env, bundle, taskQueue }) => {
    let waiting: (() => void) | undefined;
    let release!: () => void;
    const plane = new FakeControlPlane(
      cancel
        ? {
            ...behaviour,
            ready: () =>
              new Promise<void>((resolve) => {
                release = resolve;
                waiting?.();
              }),
          }
        : behaviour,
    );
    const worker = await Worker.create({ connection: env.nativeConnection, taskQueue, workflowBundle: bundle, activities: plane.activities() });
    const workflowId = `development:${taskQueue}`;
    await worker.runUntil(async () => {
      const handle = await env.client.workflow.start(developmentUpdateWorkflow, {
        taskQueue,
        workflowId,
        args: [
          {
            deploymentId: taskQueue,
            revision: 2,
            previous: { revision: 1, envKey: 'env-old', config: modelConfigSchema.parse({}), desiredReplicas: 1 },
            deployTimeoutSeconds: 60,
            ...(mode ? { mode, config: modelConfigSchema.parse({}) } : {}),
          },
        ],
      });
      if (cancel) {
        await new Promise<void>((resolve) => (waiting = resolve));
        await handle.cancel();
        await handle.result().catch(() => undefined);
        release();
      }
      await handle.result().catch((error: unknown) => {
        if (!cancel) throw error;
      });
    });
    return workflowId;
  };
}

/** Runs an async prediction against one in-memory request; `drive` dispatches or cancels it (or leaves it to expire). */
function asyncPrediction(behaviour: FakeAsyncBehaviour, input: Partial<AsyncPredictionInput>, drive: 'dispatch' | 'cancel' | 'expire'): Scenario {
  return async ({ env, bundle, taskQueue }) => {
    const request = new FakeAsyncRequest(behaviour);
    const worker = await Worker.create({ connection: env.nativeConnection, taskQueue, workflowBundle: bundle, activities: request.activities() });
    const workflowId = `async:${taskQueue}`;
    await worker.runUntil(async () => {
      const handle = await env.client.workflow.start(asyncPredictionWorkflow, {
        taskQueue,
        workflowId,
        args: [
          {
            requestId: taskQueue,
            maxTimeInQueueSeconds: 600,
            retry: { max_attempts: 3, initial_delay_ms: 100, max_delay_ms: 500 },
            callTimeoutSeconds: 60,
            webhook: true,
            webhookRetrySeconds: 30,
            ...input,
          },
        ],
      });
      if (drive === 'dispatch') {
        request.dispatch();
        await handle.signal(asyncDispatchedSignal);
      } else if (drive === 'cancel') {
        request.cancel();
        await handle.signal(asyncCancelSignal);
      }
      await handle.result();
    });
    return workflowId;
  };
}

/** Runs a deploy that is cancelled while it builds. */
function cancelledDeploy(): Scenario {
  return async ({ env, bundle, taskQueue }) => {
    let building: (() => void) | undefined;
    let release!: () => void;
    const plane = new FakeControlPlane({
      build: () =>
        new Promise<void>((resolve) => {
          release = resolve;
          building?.();
        }),
    });
    const worker = await Worker.create({ connection: env.nativeConnection, taskQueue, workflowBundle: bundle, activities: plane.activities() });
    const workflowId = `deploy:${taskQueue}`;
    await worker.runUntil(async () => {
      const handle = await env.client.workflow.start(deployWorkflow, { taskQueue, workflowId, args: [{ deploymentId: taskQueue, deployTimeoutSeconds: 60, actor: 'alice' }] });
      await new Promise<void>((resolve) => (building = resolve));
      await handle.cancel();
      await handle.result().catch(() => undefined);
      release();
    });
    return workflowId;
  };
}

const buildFailed = (): never => {
  throw ApplicationFailure.create({ message: 'the model does not import: SyntaxError', type: BUILD_FAILED, nonRetryable: true });
};
const notReady = async (): Promise<never> => {
  throw ApplicationFailure.create({ message: 'replica r-1 failed to start: load() raised', type: REPLICAS_NOT_READY, nonRetryable: true });
};

/** Every workflow path, by the file name its history is kept under. */
export const SCENARIOS: Record<string, Scenario> = {
  'deploy-active-production': deploy({}),
  'deploy-active-then-promote': deploy({ alreadyHasProduction: true }, 'staging'),
  'deploy-build-failed': deploy({ build: buildFailed }),
  'deploy-build-could-not-run': deploy({
    build: () => {
      throw new Error('venv could not be created');
    },
  }),
  'deploy-failed': deploy({ ready: notReady }),
  'deploy-cancelled': cancelledDeploy(),
  'promotion-rolled-forward': promotion(settings({ stabilization: 1 })),
  'promotion-instant': promotion({ ...settings(), rolling_deploy: false }),
  'promotion-paused-resumed': promotion(
    settings(),
    async (handle, cluster) => {
      await blockedOn(cluster, `ready:${CANDIDATE}`);
      await act(handle, 'pause');
      cluster.release(`ready:${CANDIDATE}`);
      await until(handle, (s) => s.status === 'PAUSED', 'PAUSED');
      await act(handle, 'resume');
    },
    (cluster) => cluster.arm(`ready:${CANDIDATE}`),
  ),
  'promotion-action-ignored': promotion(settings({ stabilization: 60 }), async (handle) => {
    // A resume that does not apply: refused as an Update (no trace), ignored and audited as a signal.
    await until(handle, (s) => s.step >= 1 && s.percent_traffic_to_new_version === 50, 'the first step');
    await act(handle, 'resume', 'signal');
    await until(handle, (s) => s.actions.some((a) => a.action === 'RESUME'), 'the resume to be received');
    await act(handle, 'force_roll_forward');
  }),
  'promotion-cancelled': promotion(settings({ stabilization: 60 }), afterFirstStep('cancel')),
  'promotion-force-cancelled': promotion(settings({ stabilization: 60 }), afterFirstStep('force_cancel')),
  'promotion-forced-forward': promotion(settings({ stabilization: 60 }), afterFirstStep('force_roll_forward')),
  'promotion-force-cancel-interrupts-wait': promotion(
    settings(),
    async (handle, cluster) => {
      await blockedOn(cluster, `ready:${CANDIDATE}`);
      await act(handle, 'force_cancel');
      await until(handle, (s) => s.pending_action === 'FORCE_CANCEL' || s.status === 'CANCELED', 'the force-cancel');
    },
    (cluster) => cluster.arm(`ready:${CANDIDATE}`),
  ),
  'promotion-rolled-back': promotion(
    settings(),
    async () => {},
    (cluster) => cluster.failReady.add(CANDIDATE),
  ),
  'promotion-signals': promotion(settings({ stabilization: 60 }), async (handle) => {
    await until(handle, (s) => s.step >= 1, 'the first step');
    await act(handle, 'pause', 'signal');
    await until(handle, (s) => s.status === 'PAUSED', 'PAUSED');
    await act(handle, 'resume', 'signal');
    await act(handle, 'force_roll_forward', 'signal');
  }),
  'promotion-workflow-cancelled': promotion(settings({ stabilization: 60 }), async (handle) => {
    await until(handle, (s) => s.step >= 1, 'the first step');
    await handle.cancel();
  }),
  'promotion-refused': promotion(
    settings(),
    async () => {},
    (cluster) => (cluster.refuseBegin = 'promotion p0 of staging has not ended yet'),
  ),
  'promotion-route-not-applied': promotion(
    settings(),
    async () => {},
    (cluster) => cluster.neverApplied.add(1),
  ),
  'promotion-continued-as-new': promotion(settings({ stabilization: 600 }), async (handle) => {
    await until(handle, (s) => s.step >= 1, 'the first step');
    for (let cycle = 0; cycle < 120; cycle++) {
      await act(handle, 'pause');
      await until(handle, (s) => s.status === 'PAUSED', 'PAUSED');
      await act(handle, 'resume');
      await until(handle, (s) => s.status === 'RAMPING_UP', 'RAMPING_UP');
    }
    await act(handle, 'force_roll_forward');
  }),
  'promotion-canary': promotion({ ...settings(), ramp_up_while_promoting: true, ramp_up_duration_seconds: 10 }, async (handle) => {
    await until(handle, (s) => s.step >= 2, 'the second canary stage');
    await act(handle, 'pause');
    await until(handle, (s) => s.status === 'PAUSED', 'PAUSED');
    await act(handle, 'resume');
    await until(handle, (s) => s.status === 'RAMPING_UP', 'RAMPING_UP');
    await act(handle, 'force_roll_forward');
  }),
  'development-updated': developmentUpdate({}),
  'development-build-failed': developmentUpdate({ build: buildFailed }),
  'development-not-ready': developmentUpdate({ ready: notReady }),
  'development-reloaded': developmentUpdate({}, 'reload'),
  'development-reload-failed': developmentUpdate({ ready: notReady }, 'reload'),
  'development-reload-cancelled': developmentUpdate({}, 'reload', true),
  'async-succeeded-webhook-retried': asyncPrediction({ webhookFailures: 1 }, {}, 'dispatch'),
  'async-failed-after-retries': asyncPrediction({ callFailures: [0, 1, 2].map(() => ({ code: 'MODEL_PREDICT_ERROR', retryable: true })) }, {}, 'dispatch'),
  'async-canceled': asyncPrediction({}, {}, 'cancel'),
  'async-expired': asyncPrediction({}, { maxTimeInQueueSeconds: 10 }, 'expire'),
};

async function main(): Promise<void> {
  const [set, ...only] = process.argv.slice(2);
  if (!set) throw new Error('usage: record-histories <set> [path…]   (a set is a folder under test/replay/histories, such as v2)');
  const unknown = only.filter((name) => !(name in SCENARIOS));
  if (unknown.length > 0) throw new Error(`unknown paths: ${unknown.join(', ')}; known: ${Object.keys(SCENARIOS).join(', ')}`);
  installQuietRuntime();
  const env = await TestWorkflowEnvironment.createLocal({ server: { executable: { type: 'existing-path', path: TEMPORAL_CLI }, ip: '127.0.0.1' } });
  const bundle = await bundleWorkflowCode({ workflowsPath: require.resolve('../../src/workflows'), logger: silent });
  const dir = path.join(HISTORIES_DIR, set);
  fs.mkdirSync(dir, { recursive: true });
  try {
    for (const [name, scenario] of Object.entries(SCENARIOS)) {
      if (only.length > 0 && !only.includes(name)) continue;
      const workflowId = await scenario({ env, bundle, taskQueue: `record-${name}-${Date.now().toString(36)}` });
      // The CLI's JSON is the format replay tests read (historyFromJSON), as in Temporal's samples.
      // A workflow that continued as new is recorded twice: its last run, and the run before it.
      let runId: string | undefined;
      for (const file of [name, `${name}-run-before`]) {
        const json = execFileSync(
          TEMPORAL_CLI,
          ['workflow', 'show', '--address', env.address, '--workflow-id', workflowId, ...(runId ? ['--run-id', runId] : []), '--output', 'json'],
          { encoding: 'utf8', maxBuffer: 512 * 1024 * 1024 },
        );
        const history = JSON.parse(json) as { events: { workflowExecutionStartedEventAttributes?: { continuedExecutionRunId?: string } }[] };
        // Gzipped: a history is kept to be replayed, not read, and compresses tenfold.
        fs.writeFileSync(path.join(dir, `${file}.json.gz`), zlib.gzipSync(`${JSON.stringify(history)}\n`));
        console.log(`recorded ${set}/${file}.json.gz (${history.events.length} events)`);
        runId = history.events[0]?.workflowExecutionStartedEventAttributes?.continuedExecutionRunId;
        if (!runId) break;
      }
    }
  } finally {
    await env.teardown();
  }
}

if (require.main === module) {
  main().then(
    () => process.exit(0),
    (error) => {
      console.error(error);
      process.exit(1);
    },
  );
}
