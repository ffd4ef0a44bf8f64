/**
 * What workflows write to the store through activities: a promotion's progress and audit
 * entries. The store implements these shapes; workflows build them without knowing the store.
 */
import type { PromotionStatusName } from '../shared/promotion-status';
import type { PromotionSettings } from '../shared/schemas';
import type { AuditEntry, AuditSource } from '../shared/views';

/** The fields of a promotion's record the workflow updates as it goes. */
export interface PromotionPatch {
  previous_deployment_id?: string | null;
  status?: PromotionStatusName;
  step?: number;
  total_steps?: number;
  percent_traffic_to_new_version?: number;
  candidate_replicas?: number;
  previous_replicas?: number;
  message?: string | null;
  ended_at?: string | null;
}

/** What a promotion records about itself when it starts (version 2: the workflow writes its own row). */
export interface PromotionToRecord {
  id: string;
  model_id: string;
  environment: string;
  candidate_deployment_id: string;
  settings: PromotionSettings;
  actor: string;
  workflow_id: string;
  started_at: string;
}

/** An audit entry to append (`at` defaults to now; `source` to what the actor says). */
export type NewAuditEntry = Omit<AuditEntry, 'id' | 'at' | 'source'> & { at?: string; source?: AuditSource };
