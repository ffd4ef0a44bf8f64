/**
 * One async request's record in memory behind typed mock activities, shared by the time-skipping
 * workflow tests and the replay-history recorder: how the model call and the webhook behave is
 * set per test, and every attempt is counted.
 */
import { Context } from '@temporalio/activity';
import { ApplicationFailure } from '@temporalio/common';
import type { Activities } from '../../src/contracts/activities';
import { WEBHOOK_NOT_DELIVERED } from '../../src/contracts/failures';
import type { AsyncRequestError, AsyncRequestStatus, WebhookStatus } from '../../src/shared/views';

/** The activities an async prediction calls. */
export type AsyncActivities = Pick<
  Activities,
  'asyncRequestStatus' | 'expireAsyncRequest' | 'cancelQueuedAsyncRequest' | 'callModel' | 'failAsyncRequest' | 'deliverWebhook' | 'markWebhookFailed'
>;

/** How the fake request's model call and webhook behave. */
export interface FakeAsyncBehaviour {
  /** Failures of the first calls, in order (a code and whether retrying may help). */
  callFailures?: { code: string; retryable: boolean }[];
  /** How many webhook deliveries fail before one succeeds (Infinity: all). */
  webhookFailures?: number;
  webhook?: boolean;
}

/** One async request's record in memory. */
export class FakeAsyncRequest {
  status: AsyncRequestStatus = 'QUEUED';
  webhookStatus: WebhookStatus;
  errors: AsyncRequestError[] = [];
  /** When each call attempt was scheduled (server time, so skipped time shows). */
  callAttempts: { attempt: number; scheduledAt: number }[] = [];
  webhookAttempts = 0;
  delivered = 0;

  constructor(private readonly behaviour: FakeAsyncBehaviour = {}) {
    this.webhookStatus = behaviour.webhook === false ? 'NO_WEBHOOK_PROVIDED' : 'PENDING';
  }

  /** What the dispatcher does: IN_PROGRESS (the test then signals `dispatched`). */
  dispatch(): void {
    if (this.status === 'QUEUED') this.status = 'IN_PROGRESS';
  }

  /** What the API's cancel does to the record. */
  cancel(): boolean {
    if (this.status !== 'QUEUED') return false;
    this.status = 'CANCELED';
    return true;
  }

  activities(): AsyncActivities {
    const endQueued = (to: AsyncRequestStatus): AsyncRequestStatus => {
      if (this.status === 'QUEUED') this.status = to;
      return this.status;
    };
    return {
      asyncRequestStatus: async () => this.status,
      expireAsyncRequest: async () => endQueued('EXPIRED'),
      cancelQueuedAsyncRequest: async () => endQueued('CANCELED'),
      callModel: async () => {
        const info = Context.current().info;
        this.callAttempts.push({ attempt: info.attempt, scheduledAt: info.currentAttemptScheduledTimestampMs });
        const failure = this.behaviour.callFailures?.[this.callAttempts.length - 1];
        if (failure) {
          const message = `the model answered with ${failure.code} (attempt ${info.attempt})`;
          throw failure.retryable ? ApplicationFailure.retryable(message, failure.code) : ApplicationFailure.nonRetryable(message, failure.code);
        }
        if (this.status === 'IN_PROGRESS') this.status = 'SUCCEEDED';
        return { status: this.status };
      },
      failAsyncRequest: async ({ error }) => {
        if (this.status !== 'IN_PROGRESS') return;
        this.status = 'FAILED';
        this.errors = [error];
      },
      deliverWebhook: async () => {
        if (this.webhookStatus === 'SUCCEEDED') return;
        this.webhookAttempts++;
        if (this.webhookAttempts <= (this.behaviour.webhookFailures ?? 0)) throw ApplicationFailure.retryable('the webhook answered 500', WEBHOOK_NOT_DELIVERED);
        this.delivered++;
        this.webhookStatus = 'SUCCEEDED';
      },
      markWebhookFailed: async () => {
        if (this.status === 'SUCCEEDED') this.status = 'WEBHOOK_FAILED';
        this.webhookStatus = 'FAILED';
      },
    };
  }
}
