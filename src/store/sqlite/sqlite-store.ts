import * as fs from 'node:fs';
import * as path from 'node:path';
import Database from 'better-sqlite3';
import { newId } from '../../shared/ids';
import { PRODUCTION } from '../../shared/constants';
import { DEFAULT_PROMOTION_SETTINGS, withAutoscalingDefaults, type PromotionSettings } from '../../shared/schemas';
import { migrations, type Migration } from '../migrations';
import {
  ConflictError,
  promotionInvolves,
  type ApiKeyRecord,
  type AsyncQueueCounts,
  type AsyncStatusCount,
  type AsyncQueueGroup,
  type AsyncRequestPatch,
  type AsyncRequestRecord,
  type NewAsyncRequest,
  defaultAuditSource,
  type DeploymentPatch,
  type DeploymentRecord,
  type EnvironmentRecord,
  type ModelRecord,
  type NewDeployment,
  type NodeStatus,
  type ObservedReplica,
  type PromotionRecord,
  type PromotionStatusCount,
  type RouteRecord,
  type SealedSecret,
  type SealedSecretValue,
  type SecretRecord,
  type Store,
  type UsageSample,
} from '../store';
import type { AuditEntry } from '../../shared/views';
import type { NewAuditEntry, PromotionPatch } from '../../contracts/records';

/** How often another process's commits are looked for (PRAGMA data_version). */
const WATCH_INTERVAL_MS = 150;

type Row = Record<string, unknown>;

const now = (): string => new Date().toISOString();

function toDeployment(row: Row): DeploymentRecord {
  return {
    id: row.id as string,
    model_id: row.model_id as string,
    name: row.name as string,
    kind: row.kind as DeploymentRecord['kind'],
    status: row.status as DeploymentRecord['status'],
    status_message: (row.status_message as string | null) ?? null,
    labels: JSON.parse(row.labels as string),
    autoscaling: withAutoscalingDefaults(JSON.parse(row.autoscaling as string)),
    desired_replicas: row.desired_replicas as number,
    config: row.config ? JSON.parse(row.config as string) : null,
    env_key: (row.env_key as string | null) ?? null,
    revision: (row.revision as number | null) ?? 0,
    watch_heartbeat_at: (row.watch_heartbeat_at as string | null) ?? null,
    created_at: row.created_at as string,
    updated_at: row.updated_at as string,
    deleted_at: (row.deleted_at as string | null) ?? null,
  };
}

function toEnvironment(row: Row): EnvironmentRecord {
  return {
    model_id: row.model_id as string,
    name: row.name as string,
    current_deployment_id: (row.current_deployment_id as string | null) ?? null,
    promotion_settings: row.promotion_settings ? JSON.parse(row.promotion_settings as string) : DEFAULT_PROMOTION_SETTINGS,
    created_at: row.created_at as string,
    updated_at: row.updated_at as string,
  };
}

function toPromotion(row: Row): PromotionRecord {
  return { ...(row as unknown as PromotionRecord), settings: JSON.parse(row.settings as string) };
}

function toRoute(row: Row): RouteRecord {
  return {
    model_id: row.model_id as string,
    environment: row.environment as string,
    weights: JSON.parse(row.weights as string),
    generation: row.generation as number,
    updated_at: row.updated_at as string,
  };
}

function toAudit(row: Row): AuditEntry {
  const entry = row as unknown as AuditEntry;
  return { ...entry, details: JSON.parse(row.details as string), source: entry.source ?? defaultAuditSource(entry.actor) };
}

function toAsyncRequest(row: Row): AsyncRequestRecord {
  return {
    ...(row as unknown as AsyncRequestRecord),
    input: (row.input as string | undefined) ?? '',
    retry_config: JSON.parse(row.retry_config as string),
    errors: JSON.parse(row.errors as string),
  };
}

/** Every column of async_requests but the input (listings do not need it). */
const ASYNC_COLUMNS_WITHOUT_INPUT =
  'id, model_id, environment, deployment_id, status, webhook_endpoint, webhook_status, priority, max_time_in_queue_seconds, retry_config, output, output_content_type, errors, attempts, workflow_id, created_at, status_at, started_at, ended_at, expires_at';

const MODEL_COLUMNS = 'id, name, created_at';
const API_KEY_COLUMNS = 'id, name, prefix, role, created_at';

/** The embedded store: one SQLite file in WAL mode, opened by every Gantry process. */
export class SqliteStore implements Store {
  private readonly db: Database.Database;
  private readonly listeners = new Set<() => void>();
  private watchTimer: NodeJS.Timeout | undefined;
  private lastDataVersion = 0;
  private notifyScheduled = false;

  /** Opens (creating if needed) the database file and applies pending migrations. */
  constructor(file: string) {
    if (file !== ':memory:') fs.mkdirSync(path.dirname(file), { recursive: true });
    this.db = new Database(file);
    this.db.pragma('journal_mode = WAL');
    this.db.pragma('busy_timeout = 10000');
    this.db.pragma('synchronous = NORMAL');
    this.db.pragma('foreign_keys = ON');
    this.migrate(migrations);
  }

  /** The schema version the database is at. */
  schemaVersion(): number {
    const row = this.db.prepare('SELECT MAX(version) AS v FROM schema_migrations').get() as { v: number | null };
    return row.v ?? 0;
  }

  private migrate(all: Migration[]): void {
    this.db.exec('CREATE TABLE IF NOT EXISTS schema_migrations (version INTEGER PRIMARY KEY, name TEXT NOT NULL, applied_at TEXT NOT NULL)');
    // IMMEDIATE: several processes may start at once; one applies, the others then see it applied.
    const apply = this.db.transaction(() => {
      const applied = new Set((this.db.prepare('SELECT version FROM schema_migrations').all() as { version: number }[]).map((r) => r.version));
      for (const migration of all) {
        if (applied.has(migration.version)) continue;
        this.db.exec(migration.sql);
        this.db.prepare('INSERT INTO schema_migrations (version, name, applied_at) VALUES (?, ?, ?)').run(migration.version, migration.name, now());
      }
    });
    apply.immediate();
  }

  private changed(): void {
    if (this.notifyScheduled || this.listeners.size === 0) return;
    this.notifyScheduled = true;
    setImmediate(() => {
      this.notifyScheduled = false;
      for (const listener of this.listeners) listener();
    });
  }

  async findOrCreateModel(name: string): Promise<ModelRecord> {
    const create = this.db.transaction((): ModelRecord => {
      const existing = this.db.prepare(`SELECT ${MODEL_COLUMNS} FROM models WHERE name = ?`).get(name) as ModelRecord | undefined;
      if (existing) return existing;
      const model: ModelRecord = { id: newId(), name, created_at: now() };
      this.db.prepare('INSERT INTO models (id, name, created_at) VALUES (?, ?, ?)').run(model.id, model.name, model.created_at);
      this.db
        .prepare('INSERT INTO environments (model_id, name, promotion_settings, created_at, updated_at) VALUES (?, ?, ?, ?, ?)')
        .run(model.id, PRODUCTION, JSON.stringify(DEFAULT_PROMOTION_SETTINGS), model.created_at, model.created_at);
      return model;
    });
    const model = create.immediate();
    this.changed();
    return model;
  }

  async getModel(idOrName: string): Promise<ModelRecord | undefined> {
    return (this.db.prepare(`SELECT ${MODEL_COLUMNS} FROM models WHERE id = ?`).get(idOrName) ??
      this.db.prepare(`SELECT ${MODEL_COLUMNS} FROM models WHERE name = ?`).get(idOrName)) as ModelRecord | undefined;
  }

  async listModels(): Promise<ModelRecord[]> {
    return this.db.prepare(`SELECT ${MODEL_COLUMNS} FROM models ORDER BY created_at, id`).all() as ModelRecord[];
  }

  async sandboxUserOffset(owner: string): Promise<number> {
    const allocate = this.db.transaction((): number => {
      const existing = this.db.prepare('SELECT uid_offset FROM sandbox_users WHERE owner = ?').get(owner) as { uid_offset: number } | undefined;
      if (existing) return existing.uid_offset;
      return Number(this.db.prepare('INSERT INTO sandbox_users (owner, created_at) VALUES (?, ?)').run(owner, now()).lastInsertRowid);
    });
    return allocate.immediate();
  }

  async createDeployment(input: NewDeployment): Promise<DeploymentRecord> {
    const nameTaken = this.db.prepare('SELECT 1 FROM deployments WHERE model_id = ? AND name = ? AND deleted_at IS NULL');
    const create = this.db.transaction((): DeploymentRecord => {
      let name = input.name;
      if (name !== undefined) {
        if (nameTaken.get(input.model_id, name)) throw new ConflictError(`a deployment named ${name} already exists`);
      } else {
        const counter = this.db.prepare('SELECT next_deployment_number AS n FROM models WHERE id = ?').get(input.model_id) as { n: number } | undefined;
        if (!counter) throw new Error(`model ${input.model_id} does not exist`);
        let n = counter.n;
        while (nameTaken.get(input.model_id, `deployment-${n}`)) n++;
        name = `deployment-${n}`;
        this.db.prepare('UPDATE models SET next_deployment_number = ? WHERE id = ?').run(n + 1, input.model_id);
      }
      const at = now();
      const id = newId();
      this.db
        .prepare(
          `INSERT INTO deployments (id, model_id, name, kind, status, labels, autoscaling, desired_replicas, created_at, updated_at)
           VALUES (?, ?, ?, ?, 'BUILDING', ?, ?, 0, ?, ?)`,
        )
        .run(id, input.model_id, name, input.kind, JSON.stringify(input.labels), JSON.stringify(input.autoscaling), at, at);
      return toDeployment(this.db.prepare('SELECT * FROM deployments WHERE id = ?').get(id) as Row);
    });
    const deployment = create.immediate();
    this.changed();
    return deployment;
  }

  async getDeployment(id: string): Promise<DeploymentRecord | undefined> {
    const row = this.db.prepare('SELECT * FROM deployments WHERE id = ?').get(id) as Row | undefined;
    return row && toDeployment(row);
  }

  async findDeploymentByName(modelId: string, name: string): Promise<DeploymentRecord | undefined> {
    const row = this.db.prepare('SELECT * FROM deployments WHERE model_id = ? AND name = ? AND deleted_at IS NULL').get(modelId, name) as Row | undefined;
    return row && toDeployment(row);
  }

  async listDeployments(modelId: string, options: { includeDeleted?: boolean } = {}): Promise<DeploymentRecord[]> {
    const rows = this.db
      .prepare(
        `SELECT * FROM deployments WHERE model_id = ? ${options.includeDeleted ? '' : 'AND deleted_at IS NULL'}
         ORDER BY created_at DESC, rowid DESC`,
      )
      .all(modelId) as Row[];
    return rows.map(toDeployment);
  }

  async listLiveDeployments(): Promise<DeploymentRecord[]> {
    return (this.db.prepare('SELECT * FROM deployments WHERE deleted_at IS NULL').all() as Row[]).map(toDeployment);
  }

  private patchColumns(patch: DeploymentPatch): { columns: string[]; values: unknown[] } {
    const columns: string[] = [];
    const values: unknown[] = [];
    for (const [key, value] of Object.entries(patch)) {
      if (value === undefined) continue;
      columns.push(`${key} = ?`);
      values.push(key === 'labels' || key === 'autoscaling' || key === 'config' ? JSON.stringify(value) : value);
    }
    return { columns, values };
  }

  async updateDeploymentIfStatus(id: string, statuses: DeploymentRecord['status'][], patch: DeploymentPatch, audit?: NewAuditEntry): Promise<boolean> {
    const { columns, values } = this.patchColumns(patch);
    const update = this.db.transaction((): boolean => {
      const result = this.db
        .prepare(`UPDATE deployments SET ${[...columns, 'updated_at = ?'].join(', ')} WHERE id = ? AND status IN (${statuses.map(() => '?').join(', ')})`)
        .run(...values, now(), id, ...statuses);
      if (result.changes > 0 && audit) this.insertAudit(audit);
      return result.changes > 0;
    });
    const updated = update.immediate();
    if (updated) this.changed();
    return updated;
  }

  async updateDeployment(id: string, patch: DeploymentPatch): Promise<DeploymentRecord> {
    const { columns, values } = this.patchColumns(patch);
    const update = this.db.transaction((): DeploymentRecord => {
      if (patch.name !== undefined) {
        const current = this.db.prepare('SELECT model_id FROM deployments WHERE id = ?').get(id) as { model_id: string } | undefined;
        const clash =
          current && this.db.prepare('SELECT 1 FROM deployments WHERE model_id = ? AND name = ? AND id != ? AND deleted_at IS NULL').get(current.model_id, patch.name, id);
        if (clash) throw new ConflictError(`a deployment named ${patch.name} already exists`);
      }
      if (columns.length > 0) {
        this.db.prepare(`UPDATE deployments SET ${columns.join(', ')}, updated_at = ? WHERE id = ?`).run(...values, now(), id);
      }
      const row = this.db.prepare('SELECT * FROM deployments WHERE id = ?').get(id) as Row | undefined;
      if (!row) throw new Error(`deployment ${id} does not exist`);
      return toDeployment(row);
    });
    const deployment = update.immediate();
    this.changed();
    return deployment;
  }

  async setStatusIf(id: string, from: DeploymentRecord['status'], to: DeploymentRecord['status'], message: string | null): Promise<boolean> {
    return this.updateDeploymentIfStatus(id, [from], { status: to, status_message: message });
  }

  async discardDeployment(id: string): Promise<void> {
    this.db.prepare('DELETE FROM deployments WHERE id = ?').run(id);
    this.changed();
  }

  async getEnvironment(modelId: string, name: string): Promise<EnvironmentRecord | undefined> {
    const row = this.db.prepare('SELECT * FROM environments WHERE model_id = ? AND name = ?').get(modelId, name) as Row | undefined;
    return row && toEnvironment(row);
  }

  async listEnvironments(modelId: string): Promise<EnvironmentRecord[]> {
    return (this.db.prepare(`SELECT * FROM environments WHERE model_id = ? ORDER BY name = '${PRODUCTION}' DESC, name`).all(modelId) as Row[]).map(toEnvironment);
  }

  async listAllEnvironments(): Promise<EnvironmentRecord[]> {
    return (this.db.prepare('SELECT * FROM environments').all() as Row[]).map(toEnvironment);
  }

  async createEnvironment(modelId: string, name: string, settings: PromotionSettings): Promise<EnvironmentRecord> {
    const at = now();
    try {
      this.db
        .prepare('INSERT INTO environments (model_id, name, promotion_settings, created_at, updated_at) VALUES (?, ?, ?, ?, ?)')
        .run(modelId, name, JSON.stringify(settings), at, at);
    } catch (error) {
      if ((error as { code?: string }).code === 'SQLITE_CONSTRAINT_PRIMARYKEY') throw new ConflictError(`environment ${name} already exists`);
      throw error;
    }
    this.changed();
    return (await this.getEnvironment(modelId, name))!;
  }

  async updatePromotionSettings(modelId: string, name: string, settings: PromotionSettings): Promise<EnvironmentRecord> {
    this.db.prepare('UPDATE environments SET promotion_settings = ?, updated_at = ? WHERE model_id = ? AND name = ?').run(JSON.stringify(settings), now(), modelId, name);
    this.changed();
    const environment = await this.getEnvironment(modelId, name);
    if (!environment) throw new Error(`environment ${name} does not exist`);
    return environment;
  }

  async deleteEnvironment(modelId: string, name: string): Promise<void> {
    const remove = this.db.transaction(() => {
      this.db.prepare('DELETE FROM routes WHERE model_id = ? AND environment = ?').run(modelId, name);
      this.db.prepare('DELETE FROM environments WHERE model_id = ? AND name = ?').run(modelId, name);
    });
    remove.immediate();
    this.changed();
  }

  private writeRouteIn(modelId: string, environment: string, weights: Record<string, number>, at: string): number {
    const row = this.db
      .prepare(
        `INSERT INTO routes (model_id, environment, weights, generation, updated_at) VALUES (?, ?, ?, 1, ?)
         ON CONFLICT (model_id, environment) DO UPDATE SET weights = excluded.weights, generation = routes.generation + 1, updated_at = excluded.updated_at
         RETURNING generation`,
      )
      .get(modelId, environment, JSON.stringify(weights), at) as { generation: number };
    return row.generation;
  }

  async writeRoute(modelId: string, environment: string, weights: Record<string, number>): Promise<number> {
    const write = this.db.transaction(() => this.writeRouteIn(modelId, environment, weights, now()));
    const generation = write.immediate();
    this.changed();
    return generation;
  }

  async setCurrentDeployment(modelId: string, environment: string, deploymentId: string): Promise<number> {
    const set = this.db.transaction((): number => {
      const at = now();
      const result = this.db
        .prepare('UPDATE environments SET current_deployment_id = ?, updated_at = ? WHERE model_id = ? AND name = ?')
        .run(deploymentId, at, modelId, environment);
      if (result.changes === 0) throw new Error(`environment ${environment} does not exist`);
      return this.writeRouteIn(modelId, environment, { [deploymentId]: 100 }, at);
    });
    const generation = set.immediate();
    this.changed();
    return generation;
  }

  async createPromotion(promotion: Omit<PromotionRecord, 'updated_at' | 'ended_at'>): Promise<PromotionRecord> {
    this.insertPromotion(promotion);
    this.changed();
    return (await this.getPromotion(promotion.id))!;
  }

  async createPromotionIfClear(
    promotion: Omit<PromotionRecord, 'updated_at' | 'ended_at'>,
    deploymentIds: string[],
  ): Promise<{ promotion: PromotionRecord } | { clash: PromotionRecord }> {
    const create = this.db.transaction((): Row | undefined => {
      const inFlight = this.db.prepare('SELECT * FROM promotions WHERE ended_at IS NULL AND model_id = ? AND id != ?').all(promotion.model_id, promotion.id) as Row[];
      const clash = inFlight.map(toPromotion).find((p) => p.environment === promotion.environment || deploymentIds.some((id) => promotionInvolves(p, id)));
      if (clash) return inFlight.find((row) => row.id === clash.id);
      this.insertPromotion(promotion);
      return undefined;
    });
    const clash = create.immediate();
    if (clash) return { clash: toPromotion(clash) };
    this.changed();
    return { promotion: (await this.getPromotion(promotion.id))! };
  }

  async endPromotion(id: string, end: Pick<PromotionRecord, 'status' | 'message'> & Omit<PromotionPatch, 'ended_at'>, audit: NewAuditEntry): Promise<boolean> {
    const finish = this.db.transaction((): boolean => {
      const at = now();
      const entries = Object.entries(end).filter(([, value]) => value !== undefined);
      const result = this.db
        .prepare(`UPDATE promotions SET ${[...entries.map(([key]) => `${key} = ?`), 'ended_at = ?', 'updated_at = ?'].join(', ')} WHERE id = ? AND ended_at IS NULL`)
        .run(...entries.map(([, value]) => value), at, at, id);
      if (result.changes > 0) this.insertAudit(audit);
      return result.changes > 0;
    });
    const ended = finish.immediate();
    if (ended) this.changed();
    return ended;
  }

  private insertPromotion(promotion: Omit<PromotionRecord, 'updated_at' | 'ended_at'>): void {
    this.db
      .prepare(
        `INSERT INTO promotions (id, model_id, environment, candidate_deployment_id, previous_deployment_id, status, step, total_steps,
           percent_traffic_to_new_version, candidate_replicas, previous_replicas, settings, message, actor, workflow_id, started_at, updated_at)
         VALUES (@id, @model_id, @environment, @candidate_deployment_id, @previous_deployment_id, @status, @step, @total_steps,
           @percent_traffic_to_new_version, @candidate_replicas, @previous_replicas, @settings, @message, @actor, @workflow_id, @started_at, @started_at)`,
      )
      .run({ ...promotion, settings: JSON.stringify(promotion.settings) });
  }

  async updatePromotion(id: string, patch: PromotionPatch): Promise<PromotionRecord> {
    const entries = Object.entries(patch).filter(([, value]) => value !== undefined);
    this.db
      .prepare(`UPDATE promotions SET ${[...entries.map(([key]) => `${key} = ?`), 'updated_at = ?'].join(', ')} WHERE id = ?`)
      .run(...entries.map(([, value]) => value), now(), id);
    this.changed();
    const promotion = await this.getPromotion(id);
    if (!promotion) throw new Error(`promotion ${id} does not exist`);
    return promotion;
  }

  async getPromotion(id: string): Promise<PromotionRecord | undefined> {
    const row = this.db.prepare('SELECT * FROM promotions WHERE id = ?').get(id) as Row | undefined;
    return row && toPromotion(row);
  }

  async listPromotions(modelId: string, environment: string, options: { limit?: number } = {}): Promise<PromotionRecord[]> {
    return (
      this.db
        .prepare('SELECT * FROM promotions WHERE model_id = ? AND environment = ? ORDER BY started_at DESC, rowid DESC LIMIT ?')
        .all(modelId, environment, options.limit ?? 100) as Row[]
    ).map(toPromotion);
  }

  async listPromotionsInFlight(modelId?: string): Promise<PromotionRecord[]> {
    const rows =
      modelId === undefined
        ? this.db.prepare('SELECT * FROM promotions WHERE ended_at IS NULL ORDER BY started_at').all()
        : this.db.prepare('SELECT * FROM promotions WHERE ended_at IS NULL AND model_id = ? ORDER BY started_at').all(modelId);
    return (rows as Row[]).map(toPromotion);
  }

  async listLatestPromotions(): Promise<PromotionRecord[]> {
    const rows = this.db
      .prepare(
        `SELECT * FROM (
           SELECT p.*, ROW_NUMBER() OVER (PARTITION BY p.model_id, p.environment ORDER BY p.started_at DESC, p.rowid DESC) AS recency
           FROM promotions p JOIN environments e ON e.model_id = p.model_id AND e.name = p.environment
         ) WHERE recency = 1 ORDER BY model_id, environment`,
      )
      .all() as Row[];
    return rows.map(({ recency: _, ...row }) => toPromotion(row));
  }

  async countPromotionsByStatus(): Promise<PromotionStatusCount[]> {
    return this.db.prepare('SELECT model_id, environment, status, COUNT(*) AS count FROM promotions GROUP BY model_id, environment, status').all() as PromotionStatusCount[];
  }

  async adoptIfNoCurrentDeployment(modelId: string, environment: string, deploymentId: string): Promise<boolean> {
    const adopt = this.db.transaction((): boolean => {
      const at = now();
      const result = this.db
        .prepare('UPDATE environments SET current_deployment_id = ?, updated_at = ? WHERE model_id = ? AND name = ? AND current_deployment_id IS NULL')
        .run(deploymentId, at, modelId, environment);
      if (result.changes === 0) return false;
      this.writeRouteIn(modelId, environment, { [deploymentId]: 100 }, at);
      return true;
    });
    const adopted = adopt.immediate();
    if (adopted) this.changed();
    return adopted;
  }

  async getRoute(modelId: string, environment: string): Promise<RouteRecord | undefined> {
    const row = this.db.prepare('SELECT * FROM routes WHERE model_id = ? AND environment = ?').get(modelId, environment) as Row | undefined;
    return row && toRoute(row);
  }

  async listRoutes(): Promise<RouteRecord[]> {
    return (this.db.prepare('SELECT * FROM routes').all() as Row[]).map(toRoute);
  }

  async reportReplicas(nodeId: string, replicas: ObservedReplica[]): Promise<void> {
    const replace = this.db.transaction(() => {
      this.db.prepare('DELETE FROM replicas WHERE node_id = ?').run(nodeId);
      const insert = this.db.prepare(
        `INSERT INTO replicas (id, deployment_id, node_id, state, pid, port, restarts, last_exit, last_error, revision, reload_error, started_at, ready_at, updated_at)
         VALUES (@id, @deployment_id, @node_id, @state, @pid, @port, @restarts, @last_exit, @last_error, @revision, @reload_error, @started_at, @ready_at, @updated_at)`,
      );
      for (const replica of replicas) {
        insert.run({ ...replica, node_id: nodeId, reload_error: replica.reload_error ? JSON.stringify(replica.reload_error) : null });
      }
    });
    replace.immediate();
    this.changed();
  }

  async listReplicas(deploymentId?: string): Promise<ObservedReplica[]> {
    const rows = (
      deploymentId === undefined
        ? this.db.prepare('SELECT * FROM replicas ORDER BY started_at').all()
        : this.db.prepare('SELECT * FROM replicas WHERE deployment_id = ? ORDER BY started_at').all(deploymentId)
    ) as Row[];
    return rows.map((row) => ({ ...(row as unknown as ObservedReplica), reload_error: row.reload_error ? JSON.parse(row.reload_error as string) : null }));
  }

  async reportNode(status: NodeStatus): Promise<void> {
    this.db
      .prepare(
        `INSERT INTO nodes (id, gateway_url, applied_routes, heartbeat_at) VALUES (?, ?, ?, ?)
         ON CONFLICT (id) DO UPDATE SET gateway_url = excluded.gateway_url, applied_routes = excluded.applied_routes, heartbeat_at = excluded.heartbeat_at`,
      )
      .run(status.id, status.gateway_url, JSON.stringify(status.applied_routes), status.heartbeat_at);
    this.changed();
  }

  async listNodes(): Promise<NodeStatus[]> {
    return (this.db.prepare('SELECT * FROM nodes ORDER BY id').all() as Row[]).map((row) => ({
      id: row.id as string,
      gateway_url: row.gateway_url as string,
      applied_routes: JSON.parse(row.applied_routes as string),
      heartbeat_at: row.heartbeat_at as string,
    }));
  }

  async createApiKey(key: { name: string; prefix: string; secretHash: string; role: 'admin' }): Promise<ApiKeyRecord> {
    const record: ApiKeyRecord = { id: newId(), name: key.name, prefix: key.prefix, role: key.role, created_at: now() };
    this.db
      .prepare('INSERT INTO api_keys (id, name, prefix, secret_hash, role, created_at) VALUES (?, ?, ?, ?, ?, ?)')
      .run(record.id, record.name, record.prefix, key.secretHash, record.role, record.created_at);
    this.changed();
    return record;
  }

  async findApiKeyByHash(secretHash: string): Promise<ApiKeyRecord | undefined> {
    return this.db.prepare(`SELECT ${API_KEY_COLUMNS} FROM api_keys WHERE secret_hash = ? AND revoked_at IS NULL`).get(secretHash) as ApiKeyRecord | undefined;
  }

  async countApiKeys(): Promise<number> {
    return (this.db.prepare('SELECT COUNT(*) AS n FROM api_keys WHERE revoked_at IS NULL').get() as { n: number }).n;
  }

  async listApiKeyHashes(): Promise<Map<string, string>> {
    const rows = this.db.prepare('SELECT secret_hash, name FROM api_keys WHERE revoked_at IS NULL').all() as {
      secret_hash: string;
      name: string;
    }[];
    return new Map(rows.map((row) => [row.secret_hash, row.name]));
  }

  async appendAudit(entry: NewAuditEntry): Promise<AuditEntry> {
    const appended = this.insertAudit(entry);
    this.changed();
    return appended;
  }

  private insertAudit(entry: NewAuditEntry): AuditEntry {
    const at = entry.at ?? now();
    const source = entry.source ?? defaultAuditSource(entry.actor);
    const result = this.db
      .prepare('INSERT INTO audit_log (model_id, actor, action, target, details, source, at) VALUES (?, ?, ?, ?, ?, ?, ?)')
      .run(entry.model_id, entry.actor, entry.action, entry.target, JSON.stringify(entry.details), source, at);
    return { ...entry, source, id: Number(result.lastInsertRowid), at };
  }

  async listAudit(modelId: string | null, options: { limit?: number } = {}): Promise<AuditEntry[]> {
    const rows = this.db.prepare('SELECT * FROM audit_log WHERE model_id IS ? ORDER BY id DESC LIMIT ?').all(modelId, options.limit ?? 1000) as Row[];
    return rows.map(toAudit);
  }

  async listSecrets(): Promise<SecretRecord[]> {
    return this.db.prepare('SELECT id, name, created_at, updated_at FROM secrets ORDER BY name').all() as SecretRecord[];
  }

  async upsertSecret(name: string, value: SealedSecretValue): Promise<{ secret: SecretRecord; created: boolean }> {
    const upsert = this.db.transaction((): { secret: SecretRecord; created: boolean } => {
      const at = now();
      const existing = this.db.prepare('SELECT id, created_at FROM secrets WHERE name = ?').get(name) as { id: string; created_at: string } | undefined;
      if (existing) {
        this.db.prepare('UPDATE secrets SET ciphertext = ?, iv = ?, auth_tag = ?, updated_at = ? WHERE id = ?').run(value.ciphertext, value.iv, value.auth_tag, at, existing.id);
        return { secret: { id: existing.id, name, created_at: existing.created_at, updated_at: at }, created: false };
      }
      const id = newId();
      this.db
        .prepare('INSERT INTO secrets (id, name, ciphertext, iv, auth_tag, created_at, updated_at) VALUES (?, ?, ?, ?, ?, ?, ?)')
        .run(id, name, value.ciphertext, value.iv, value.auth_tag, at, at);
      return { secret: { id, name, created_at: at, updated_at: at }, created: true };
    });
    const result = upsert.immediate();
    this.changed();
    return result;
  }

  async deleteSecret(name: string): Promise<boolean> {
    const deleted = this.db.prepare('DELETE FROM secrets WHERE name = ?').run(name).changes > 0;
    if (deleted) this.changed();
    return deleted;
  }

  async readSecretCiphertexts(names: string[]): Promise<SealedSecret[]> {
    if (names.length === 0) return [];
    const rows = this.db
      .prepare(`SELECT name, ciphertext, iv, auth_tag FROM secrets WHERE name IN (${names.map(() => '?').join(', ')}) ORDER BY name`)
      .all(...names) as SealedSecret[];
    return rows;
  }

  async addUsage(samples: UsageSample[]): Promise<void> {
    const add = this.db.transaction(() => {
      const upsert = this.db.prepare(
        `INSERT INTO usage (deployment_id, minute, replica_seconds, requests) VALUES (@deployment_id, @minute, @replica_seconds, @requests)
         ON CONFLICT (deployment_id, minute) DO UPDATE SET
           replica_seconds = usage.replica_seconds + excluded.replica_seconds, requests = usage.requests + excluded.requests`,
      );
      for (const sample of samples) upsert.run(sample);
    });
    add.immediate();
  }

  async listUsage(range: { start: string; end: string }): Promise<UsageSample[]> {
    return this.db.prepare('SELECT * FROM usage WHERE minute >= ? AND minute < ? ORDER BY minute, deployment_id').all(range.start, range.end) as UsageSample[];
  }

  async createAsyncRequest(request: NewAsyncRequest): Promise<AsyncRequestRecord> {
    this.db
      .prepare(
        `INSERT INTO async_requests (id, model_id, environment, deployment_id, status, webhook_endpoint, webhook_status, priority,
           max_time_in_queue_seconds, retry_config, input, workflow_id, created_at, status_at, expires_at)
         VALUES (@id, @model_id, @environment, @deployment_id, 'QUEUED', @webhook_endpoint, @webhook_status, @priority,
           @max_time_in_queue_seconds, @retry_config, @input, @workflow_id, @created_at, @created_at, @expires_at)`,
      )
      .run({ ...request, retry_config: JSON.stringify(request.retry_config) });
    this.changed();
    return (await this.getAsyncRequest(request.id))!;
  }

  async getAsyncRequest(id: string): Promise<AsyncRequestRecord | undefined> {
    const row = this.db.prepare('SELECT * FROM async_requests WHERE id = ?').get(id) as Row | undefined;
    return row && toAsyncRequest(row);
  }

  async discardAsyncRequest(id: string): Promise<void> {
    this.db.prepare('DELETE FROM async_requests WHERE id = ?').run(id);
    this.changed();
  }

  async transitionAsyncRequest(id: string, from: AsyncRequestRecord['status'][], patch: AsyncRequestPatch): Promise<boolean> {
    const entries = Object.entries(patch).filter(([, value]) => value !== undefined);
    const columns = entries.map(([key]) => `${key} = ?`);
    const values = entries.map(([key, value]) => (key === 'errors' ? JSON.stringify(value) : value));
    if (patch.status !== undefined) {
      columns.push('status_at = ?');
      values.push(now());
    }
    if (columns.length === 0) return false;
    const result = this.db.prepare(`UPDATE async_requests SET ${columns.join(', ')} WHERE id = ? AND status IN (${from.map(() => '?').join(', ')})`).run(...values, id, ...from);
    if (result.changes > 0) this.changed();
    return result.changes > 0;
  }

  async countAsyncRequests(): Promise<AsyncQueueCounts[]> {
    return this.db
      .prepare(
        `SELECT deployment_id, SUM(status = 'QUEUED') AS queued, SUM(status = 'IN_PROGRESS') AS in_progress
         FROM async_requests WHERE status IN ('QUEUED', 'IN_PROGRESS') GROUP BY deployment_id`,
      )
      .all() as AsyncQueueCounts[];
  }

  async countAsyncRequestsByStatus(): Promise<AsyncStatusCount[]> {
    return this.db.prepare('SELECT model_id, deployment_id, status, COUNT(*) AS count FROM async_requests GROUP BY model_id, deployment_id, status').all() as AsyncStatusCount[];
  }

  async listAsyncQueueGroups(): Promise<AsyncQueueGroup[]> {
    return this.db
      .prepare(
        `SELECT model_id, deployment_id, environment, COUNT(*) AS queued FROM async_requests
         WHERE status = 'QUEUED' GROUP BY model_id, deployment_id, environment`,
      )
      .all() as AsyncQueueGroup[];
  }

  async repointQueuedAsyncRequests(modelId: string, environment: string, fromDeploymentId: string, toDeploymentId: string): Promise<number> {
    const result = this.db
      .prepare(`UPDATE async_requests SET deployment_id = ? WHERE model_id = ? AND environment = ? AND deployment_id = ? AND status = 'QUEUED'`)
      .run(toDeploymentId, modelId, environment, fromDeploymentId);
    if (result.changes > 0) this.changed();
    return result.changes;
  }

  async dispatchAsyncRequests(deploymentId: string, slots: number): Promise<AsyncRequestRecord[]> {
    const dispatch = this.db.transaction((): Row[] => {
      const { n } = this.db.prepare(`SELECT COUNT(*) AS n FROM async_requests WHERE deployment_id = ? AND status = 'IN_PROGRESS'`).get(deploymentId) as { n: number };
      const free = slots - n;
      if (free <= 0) return [];
      const at = now();
      return this.db
        .prepare(
          `UPDATE async_requests SET status = 'IN_PROGRESS', status_at = ?, started_at = ?
           WHERE id IN (SELECT id FROM async_requests WHERE deployment_id = ? AND status = 'QUEUED' AND expires_at > ? ORDER BY priority, created_at, rowid LIMIT ?)
           RETURNING ${ASYNC_COLUMNS_WITHOUT_INPUT}`,
        )
        .all(at, at, deploymentId, at, free) as Row[];
    });
    const rows = dispatch.immediate();
    if (rows.length > 0) this.changed();
    return rows.map(toAsyncRequest).sort((a, b) => a.priority - b.priority || a.created_at.localeCompare(b.created_at));
  }

  async listUnfinishedAsyncRequests(): Promise<AsyncRequestRecord[]> {
    return (this.db.prepare(`SELECT ${ASYNC_COLUMNS_WITHOUT_INPUT} FROM async_requests WHERE status IN ('QUEUED', 'IN_PROGRESS') ORDER BY created_at, rowid`).all() as Row[]).map(
      toAsyncRequest,
    );
  }

  async clearAsyncOutputs(endedBefore: string): Promise<number> {
    const result = this.db.prepare("UPDATE async_requests SET output = NULL WHERE output IS NOT NULL AND ended_at < ? AND webhook_status <> 'PENDING'").run(endedBefore);
    if (result.changes > 0) this.changed();
    return result.changes;
  }

  watch(listener: () => void): () => void {
    this.listeners.add(listener);
    if (!this.watchTimer) {
      this.lastDataVersion = this.db.pragma('data_version', { simple: true }) as number;
      this.watchTimer = setInterval(() => {
        const version = this.db.pragma('data_version', { simple: true }) as number;
        if (version !== this.lastDataVersion) {
          this.lastDataVersion = version;
          this.changed();
        }
      }, WATCH_INTERVAL_MS);
      this.watchTimer.unref();
    }
    return () => {
      this.listeners.delete(listener);
      if (this.listeners.size === 0 && this.watchTimer) {
        clearInterval(this.watchTimer);
        this.watchTimer = undefined;
      }
    };
  }

  async close(): Promise<void> {
    if (this.watchTimer) clearInterval(this.watchTimer);
    this.listeners.clear();
    this.db.close();
  }
}

/** Opens Gantry's SQLite store at the given file. */
export function openSqliteStore(file: string): SqliteStore {
  return new SqliteStore(file);
}
