/**
 * What the chaos harness asks Temporal: whether a workflow runs (with a Temporal client, as
 * `TestStack.temporalClient()` makes), and the `temporal workflow terminate|cancel` faults (with
 * the Temporal CLI, as an operator would). Temporal may be down; every call has a deadline and
 * a failure to answer is reported as TemporalUnreachable, never as a workflow state.
 */
import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import { WorkflowNotFoundError, type Client } from '@temporalio/client';
import { TEMPORAL_CLI } from '../../src/stack/temporal-dev-server';
import type { TestStack } from '../helpers/stack';

const run = promisify(execFile);

/** Temporal did not answer (it is restarting, or the call timed out). */
export class TemporalUnreachable extends Error {
  override name = 'TemporalUnreachable';
}

/** A workflow execution's status name (RUNNING, COMPLETED, FAILED, CANCELLED, TERMINATED, …), or NOT_FOUND. */
export type WorkflowState = string;

/** How long one question to Temporal may take. */
const CALL_DEADLINE_MS = 5000;

/** Reads workflow states from the stack's Temporal server, reconnecting after it restarts. */
export class WorkflowInspector {
  private client: Client | undefined;

  constructor(private readonly stack: TestStack) {}

  private async connected(): Promise<Client> {
    if (!this.client) {
      try {
        let gaveUp = false;
        const connecting = this.stack.temporalClient();
        // A connection that arrives after the timeout is closed, not leaked.
        connecting.then(
          (late) => {
            if (gaveUp) void late.connection.close().catch(() => undefined);
          },
          () => undefined,
        );
        try {
          this.client = await withTimeout(connecting, CALL_DEADLINE_MS, 'connect');
        } catch (error) {
          gaveUp = true;
          throw error;
        }
      } catch (error) {
        throw new TemporalUnreachable(`cannot connect to Temporal: ${(error as Error).message}`);
      }
    }
    return this.client;
  }

  private async ask<T>(what: string, question: (client: Client) => Promise<T>): Promise<T> {
    const client = await this.connected();
    try {
      return await client.connection.withDeadline(Date.now() + CALL_DEADLINE_MS, () => question(client));
    } catch (error) {
      if (error instanceof WorkflowNotFoundError) throw error;
      // Start afresh next time: the server may have restarted under this connection.
      this.client = undefined;
      void client.connection.close().catch(() => undefined);
      throw new TemporalUnreachable(`${what}: ${(error as Error).message}`);
    }
  }

  /** The status of the latest run of a workflow id, or NOT_FOUND. */
  async state(workflowId: string): Promise<WorkflowState> {
    return (await this.describe(workflowId)).status;
  }

  /**
   * The status of the latest run of a workflow id (or NOT_FOUND), with the problems Temporal
   * reports on it (its `TemporalReportedProblems`, e.g. a workflow task failing again and again).
   */
  async describe(workflowId: string): Promise<{ status: WorkflowState; reportedProblems?: string }> {
    try {
      const description = await this.ask(`describe ${workflowId}`, (client) => client.workflow.getHandle(workflowId).describe());
      const field = description.raw.workflowExecutionInfo?.searchAttributes?.indexedFields?.TemporalReportedProblems;
      let reportedProblems: string | undefined;
      if (field?.data) {
        try {
          reportedProblems = (JSON.parse(Buffer.from(field.data).toString('utf8')) as string[]).join(', ');
        } catch {
          reportedProblems = 'unreadable';
        }
      }
      return { status: description.status.name, ...(reportedProblems ? { reportedProblems } : {}) };
    } catch (error) {
      if (error instanceof WorkflowNotFoundError) return { status: 'NOT_FOUND' };
      throw error;
    }
  }

  /** The ids of the running workflows of a type for a deployment (by the GantryDeploymentId search attribute). */
  async runningWorkflowsOf(workflowType: string, deploymentId: string): Promise<string[]> {
    return this.ask(`list ${workflowType} of ${deploymentId}`, async (client) => {
      const ids: string[] = [];
      const query = `WorkflowType = '${workflowType}' AND ExecutionStatus = 'Running' AND GantryDeploymentId = '${deploymentId}'`;
      for await (const execution of client.workflow.list({ query })) ids.push(execution.workflowId);
      return ids;
    });
  }

  /**
   * The running development update workflows of a development deployment: `development:<id>`
   * (one update at a time per deployment), `development:<id>:<revision>` (the older id, one per
   * revision), or any other run of `developmentUpdateWorkflow` tagged with the deployment.
   */
  async runningDevelopmentUpdates(deploymentId: string, revision?: number): Promise<string[]> {
    const ids = [`development:${deploymentId}`, ...(revision === undefined ? [] : [`development:${deploymentId}:${revision}`])];
    const running: string[] = [];
    for (const id of ids) if ((await this.state(id)) === 'RUNNING') running.push(id);
    if (running.length > 0) return running;
    return this.runningWorkflowsOf('developmentUpdateWorkflow', deploymentId);
  }

  /** Every running workflow of the namespace (id and type). */
  async runningWorkflows(): Promise<{ workflowId: string; type: string }[]> {
    return this.ask('list running workflows', async (client) => {
      const running: { workflowId: string; type: string }[] = [];
      for await (const execution of client.workflow.list({ query: "ExecutionStatus = 'Running'" })) running.push({ workflowId: execution.workflowId, type: execution.type });
      return running;
    });
  }

  /** The promotion id a running promotion workflow reports through its `promotionStatus` query. */
  async promotionIdOf(workflowId: string): Promise<string | undefined> {
    const status = await this.ask(`query ${workflowId}`, (client) => client.workflow.getHandle(workflowId).query<{ promotion_id?: string }>('promotionStatus'));
    return status?.promotion_id;
  }

  /** Whether the server answers at all. */
  async reachable(): Promise<boolean> {
    try {
      await this.ask('system info', (client) => client.workflowService.getSystemInfo({}));
      return true;
    } catch {
      return false;
    }
  }

  /** Closes the connection. */
  async close(): Promise<void> {
    await this.client?.connection.close().catch(() => undefined);
    this.client = undefined;
  }
}

/** What a `temporal workflow …` command did. */
export interface CliOutcome {
  ok: boolean;
  output: string;
}

/** Runs `temporal workflow terminate` or `temporal workflow cancel` on a workflow id of the stack's server. */
export async function temporalWorkflowCommand(stack: TestStack, command: 'terminate' | 'cancel', workflowId: string): Promise<CliOutcome> {
  const args = ['workflow', command, '--address', stack.env.TEMPORAL_ADDRESS!, '--workflow-id', workflowId];
  if (command === 'terminate') args.push('--reason', 'chaos: fault injection');
  try {
    const { stdout, stderr } = await run(TEMPORAL_CLI, args, { timeout: 20_000 });
    return { ok: true, output: `${stdout}${stderr}`.trim() };
  } catch (error) {
    const failed = error as { stdout?: string; stderr?: string; message: string };
    return { ok: false, output: `${failed.stdout ?? ''}${failed.stderr ?? ''}`.trim() || failed.message };
  }
}

function withTimeout<T>(promise: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  return Promise.race([
    promise.finally(() => clearTimeout(timer)),
    new Promise<T>((_, reject) => {
      timer = setTimeout(() => reject(new Error(`${what} timed out after ${ms} ms`)), ms);
    }),
  ]);
}
