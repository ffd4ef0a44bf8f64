/**
 * `gantry push --watch`: creates or updates the model's development deployment, then sends
 * every saved change (debounced) and prints how the replica took it: live-reloaded (with the
 * time it took), failed (the previous code keeps serving), or rebuilding (requirements changed).
 * Keeps the development deployment awake while it runs.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { ApiClientError, type ApiClient } from '../api-client';
import { modelNameFor, packageFiles, packModelDirectory } from '../package-archive';
import { waitForDeployment } from '../waits';
import type { DeploymentView } from '../../shared/views';
import type { DevelopmentPushResult } from '../../contracts/api';

/** How long file changes are collected before a push. */
const DEBOUNCE_MS = 150;
/** How often the directory is looked at for changes. */
const POLL_MS = 200;

/** What a push of the directory would send, as names, sizes and modification times. */
function snapshot(dir: string): string {
  return packageFiles(dir)
    .map((file) => {
      const stat = fs.statSync(path.join(dir, file), { throwIfNoEntry: false });
      return stat ? `${file}:${stat.size}:${stat.mtimeMs}` : file;
    })
    .join('\n');
}
/** How often the session tells the API it is still watching. */
const HEARTBEAT_MS = 10_000;
/** How long a build or rebuild may take before the session gives up waiting for it. */
const SETTLE_TIMEOUT_MS = 1_800_000;

type DevelopmentAnswer = DeploymentView & { development_update: Omit<DevelopmentPushResult, 'deployment'> };

async function pushDevelopment(client: ApiClient, dir: string, modelName: string, labels: Record<string, string> | undefined): Promise<DevelopmentAnswer> {
  const archive = await packModelDirectory(dir);
  try {
    const form = new FormData();
    form.append('options', JSON.stringify({ model_name: modelName, development: true, labels }));
    form.append('archive', await fs.openAsBlob(archive.file), 'package.tar.gz');
    return await client.request<DevelopmentAnswer>('POST', '/v1/deployments', form);
  } finally {
    fs.rmSync(path.dirname(archive.file), { recursive: true, force: true });
  }
}

/** The statuses in which a deploy or update is still under way: a push waits for them to end. */
const UNDER_WAY = new Set(['BUILDING', 'DEPLOYING', 'UPDATING']);

/** Polls the deployment until no deploy or update of it is under way. */
async function settled(client: ApiClient, deployment: DeploymentView): Promise<DeploymentView> {
  let current = deployment;
  const deadline = Date.now() + SETTLE_TIMEOUT_MS;
  while (UNDER_WAY.has(current.status)) {
    if (Date.now() > deadline) throw new Error(`the development deployment is still ${current.status} after ${SETTLE_TIMEOUT_MS / 1000} s`);
    await new Promise((resolve) => setTimeout(resolve, 250));
    current = await client.getDeployment(current.model_id, current.id);
  }
  return current;
}

/** Prints how an update went; waits for a rebuild to end. */
async function report(client: ApiClient, answer: DevelopmentAnswer, since: number): Promise<void> {
  const update = answer.development_update;
  const stamp = new Date().toLocaleTimeString();
  if (update.update === 'reloaded' || update.update === 'woken') {
    console.log(`${stamp}  revision ${update.revision} ${update.update === 'woken' ? 'woke the replica' : 'live-reloaded'} in ${((Date.now() - since) / 1000).toFixed(2)} s`);
  } else if (update.update === 'failed') {
    console.log(`${stamp}  revision ${update.revision} failed to load; the previous code keeps serving:\n    ${update.error}`);
  } else if (update.update === 'rebuilding') {
    console.log(`${stamp}  requirements changed: rebuilding revision ${update.revision} (the replica restarts)…`);
    const done = await settled(client, answer);
    const message = done.status_message ? `: ${done.status_message}` : '';
    console.log(`${new Date().toLocaleTimeString()}  rebuild ended, ${done.status}${message} (${((Date.now() - since) / 1000).toFixed(1)} s)`);
  } else if (update.update === 'created') {
    console.log(`${stamp}  the development deployment was failed: building it again from this code…`);
    const done = await settled(client, answer);
    console.log(`${new Date().toLocaleTimeString()}  build ended, ${done.status}${done.status_message ? `: ${done.status_message}` : ''}`);
  }
}

/**
 * Runs a watch session until interrupted. The directory is watched from the start, before the
 * first push: a change saved while the first build runs is sent once it is done, like any other.
 */
export async function watchCommand(client: ApiClient, dir: string, options: { modelName?: string; labels?: Record<string, string> }): Promise<number> {
  const modelName = modelNameFor(dir, options.modelName);
  // What the first push sends: any later difference is a change to send.
  let last = snapshot(dir);
  let since = Date.now();
  let answer = await pushDevelopment(client, dir, modelName, options.labels);

  let timer: NodeJS.Timeout | undefined;
  let busy = false;
  let again = false;
  const send = async (): Promise<void> => {
    if (busy) {
      again = true;
      return;
    }
    busy = true;
    try {
      do {
        again = false;
        // A deploy or update under way (the first build included) ends before the change is sent.
        answer = { ...answer, ...(await settled(client, answer)) };
        since = Date.now();
        try {
          answer = await pushDevelopment(client, dir, modelName, options.labels);
        } catch (error) {
          if (!(error instanceof ApiClientError && error.status === 409)) throw error;
          // An update started meanwhile: send this change once it is done.
          answer = { ...answer, ...(await settled(client, answer)) };
          answer = await pushDevelopment(client, dir, modelName, options.labels);
        }
        await report(client, answer, since);
      } while (again);
    } catch (error) {
      console.error(`${new Date().toLocaleTimeString()}  could not send the change: ${(error as Error).message}`);
    } finally {
      busy = false;
    }
  };
  // Polling, not fs.watch: a recursive fs.watch on Linux stops reporting once editors replace
  // files by renaming (atomic saves), and polling a model directory is cheap.
  const poller = setInterval(() => {
    const now = snapshot(dir);
    if (now === last) return;
    last = now;
    if (timer) clearTimeout(timer);
    timer = setTimeout(() => void send(), DEBOUNCE_MS);
  }, POLL_MS);

  if (answer.development_update.update === 'created') {
    console.log(`creating the development deployment of ${modelName} (${answer.id})`);
    const ready = await waitForDeployment(client, answer, { timeoutSeconds: SETTLE_TIMEOUT_MS / 1000, quiet: false, log: (line) => console.log(line) });
    if (ready.status !== 'ACTIVE') console.error(`the development deployment is ${ready.status}: ${ready.status_message ?? ''}\nfix the code and save: the change is pushed`);
  } else {
    await report(client, answer, since);
  }
  const url = `${client.credentials.gatewayUrl}/models/${answer.model_id}/development/predict`;
  console.log(`serving at ${url}\nwatching ${dir} for changes (Ctrl-C to stop)`);

  const heartbeat = async (): Promise<void> => {
    await client.request('POST', `/v1/models/${answer.model_id}/deployments/development/watch_heartbeat`).catch(() => undefined);
  };
  await heartbeat();
  const beat = setInterval(() => void heartbeat(), HEARTBEAT_MS);

  await new Promise<void>((resolve) => {
    const stop = (): void => resolve();
    process.once('SIGINT', stop);
    process.once('SIGTERM', stop);
  });
  clearInterval(poller);
  clearInterval(beat);
  if (timer) clearTimeout(timer);
  console.log('\nstopped watching; the development deployment sleeps when idle');
  return 0;
}
