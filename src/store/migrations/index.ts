/** One schema change; applied once, in order, inside a transaction. */
export interface Migration {
  version: number;
  name: string;
  sql: string;
}

/** Every schema change of Gantry's SQLite store, oldest first. Never edit one that has shipped: add another. */
export const migrations: Migration[] = [
  {
    version: 1,
    name: 'models, deployments, environments, routes, replicas, nodes, api keys, audit, usage',
    sql: `
      CREATE TABLE models (
        id TEXT PRIMARY KEY,
        name TEXT NOT NULL UNIQUE,
        next_deployment_number INTEGER NOT NULL DEFAULT 1,
        created_at TEXT NOT NULL
      );
      CREATE TABLE deployments (
        id TEXT PRIMARY KEY,
        model_id TEXT NOT NULL REFERENCES models(id),
        name TEXT NOT NULL,
        kind TEXT NOT NULL CHECK (kind IN ('published', 'development')),
        status TEXT NOT NULL,
        status_message TEXT,
        labels TEXT NOT NULL DEFAULT '{}',
        autoscaling TEXT NOT NULL,
        desired_replicas INTEGER NOT NULL DEFAULT 0,
        config TEXT,
        env_key TEXT,
        created_at TEXT NOT NULL,
        updated_at TEXT NOT NULL,
        deleted_at TEXT
      );
      CREATE UNIQUE INDEX deployments_live_name ON deployments(model_id, name) WHERE deleted_at IS NULL;
      CREATE UNIQUE INDEX deployments_one_development ON deployments(model_id) WHERE kind = 'development' AND deleted_at IS NULL;
      CREATE INDEX deployments_by_model ON deployments(model_id, created_at);
      CREATE TABLE environments (
        model_id TEXT NOT NULL REFERENCES models(id),
        name TEXT NOT NULL,
        current_deployment_id TEXT REFERENCES deployments(id),
        created_at TEXT NOT NULL,
        updated_at TEXT NOT NULL,
        PRIMARY KEY (model_id, name)
      );
      CREATE TABLE routes (
        model_id TEXT NOT NULL,
        environment TEXT NOT NULL,
        weights TEXT NOT NULL,
        generation INTEGER NOT NULL,
        updated_at TEXT NOT NULL,
        PRIMARY KEY (model_id, environment),
        FOREIGN KEY (model_id, environment) REFERENCES environments(model_id, name)
      );
      CREATE TABLE replicas (
        id TEXT PRIMARY KEY,
        deployment_id TEXT NOT NULL,
        node_id TEXT NOT NULL,
        state TEXT NOT NULL,
        pid INTEGER,
        port INTEGER,
        restarts INTEGER NOT NULL DEFAULT 0,
        last_exit TEXT,
        last_error TEXT,
        started_at TEXT NOT NULL,
        ready_at TEXT,
        updated_at TEXT NOT NULL
      );
      CREATE INDEX replicas_by_deployment ON replicas(deployment_id);
      CREATE TABLE nodes (
        id TEXT PRIMARY KEY,
        gateway_url TEXT NOT NULL,
        applied_routes TEXT NOT NULL DEFAULT '{}',
        heartbeat_at TEXT NOT NULL
      );
      CREATE TABLE api_keys (
        id TEXT PRIMARY KEY,
        name TEXT NOT NULL,
        prefix TEXT NOT NULL,
        secret_hash TEXT NOT NULL UNIQUE,
        role TEXT NOT NULL,
        created_at TEXT NOT NULL,
        revoked_at TEXT
      );
      CREATE TABLE audit_log (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        model_id TEXT,
        actor TEXT NOT NULL,
        action TEXT NOT NULL,
        target TEXT,
        details TEXT NOT NULL DEFAULT '{}',
        at TEXT NOT NULL
      );
      CREATE INDEX audit_by_model ON audit_log(model_id, id);
      CREATE TABLE usage (
        deployment_id TEXT NOT NULL,
        minute TEXT NOT NULL,
        replica_seconds REAL NOT NULL DEFAULT 0,
        requests INTEGER NOT NULL DEFAULT 0,
        PRIMARY KEY (deployment_id, minute)
      );
    `,
  },
  {
    version: 2,
    name: 'environment promotion settings and the promotions history',
    sql: `
      ALTER TABLE environments ADD COLUMN promotion_settings TEXT;
      CREATE TABLE promotions (
        id TEXT PRIMARY KEY,
        model_id TEXT NOT NULL REFERENCES models(id),
        environment TEXT NOT NULL,
        candidate_deployment_id TEXT NOT NULL,
        previous_deployment_id TEXT,
        status TEXT NOT NULL,
        step INTEGER NOT NULL DEFAULT 0,
        total_steps INTEGER NOT NULL DEFAULT 0,
        percent_traffic_to_new_version INTEGER NOT NULL DEFAULT 0,
        candidate_replicas INTEGER NOT NULL DEFAULT 0,
        previous_replicas INTEGER NOT NULL DEFAULT 0,
        settings TEXT NOT NULL,
        message TEXT,
        actor TEXT NOT NULL,
        workflow_id TEXT NOT NULL,
        started_at TEXT NOT NULL,
        updated_at TEXT NOT NULL,
        ended_at TEXT
      );
      CREATE INDEX promotions_by_environment ON promotions(model_id, environment, started_at);
      CREATE INDEX promotions_in_flight ON promotions(ended_at) WHERE ended_at IS NULL;
    `,
  },
  {
    version: 3,
    name: 'development deployments: watch sessions and code revisions',
    sql: `
      ALTER TABLE deployments ADD COLUMN watch_heartbeat_at TEXT;
      ALTER TABLE deployments ADD COLUMN revision INTEGER NOT NULL DEFAULT 0;
      ALTER TABLE replicas ADD COLUMN revision INTEGER NOT NULL DEFAULT 0;
      ALTER TABLE replicas ADD COLUMN reload_error TEXT;
    `,
  },
  {
    version: 4,
    name: 'audit entries say where they came from',
    sql: `
      ALTER TABLE audit_log ADD COLUMN source TEXT;
    `,
  },
  {
    version: 5,
    name: 'secrets, encrypted at rest (AES-256-GCM; the key is GANTRY_HOME/secrets.key)',
    sql: `
      CREATE TABLE secrets (
        id TEXT PRIMARY KEY,
        name TEXT NOT NULL UNIQUE,
        ciphertext BLOB NOT NULL,
        iv BLOB NOT NULL,
        auth_tag BLOB NOT NULL,
        created_at TEXT NOT NULL,
        updated_at TEXT NOT NULL
      );
    `,
  },
  {
    version: 6,
    name: 'async prediction requests',
    sql: `
      CREATE TABLE async_requests (
        id TEXT PRIMARY KEY,
        model_id TEXT NOT NULL,
        environment TEXT,
        deployment_id TEXT NOT NULL,
        status TEXT NOT NULL,
        webhook_endpoint TEXT,
        webhook_status TEXT NOT NULL,
        priority INTEGER NOT NULL,
        max_time_in_queue_seconds INTEGER NOT NULL,
        retry_config TEXT NOT NULL,
        input TEXT NOT NULL,
        output TEXT,
        output_content_type TEXT,
        errors TEXT NOT NULL DEFAULT '[]',
        attempts INTEGER NOT NULL DEFAULT 0,
        workflow_id TEXT NOT NULL,
        created_at TEXT NOT NULL,
        status_at TEXT NOT NULL,
        started_at TEXT,
        ended_at TEXT,
        expires_at TEXT NOT NULL
      );
      CREATE INDEX async_requests_queue ON async_requests(deployment_id, status, priority, created_at);
      CREATE INDEX async_requests_unfinished ON async_requests(status) WHERE status IN ('QUEUED', 'IN_PROGRESS');
      CREATE INDEX async_requests_retained ON async_requests(ended_at) WHERE output IS NOT NULL;
    `,
  },
  {
    version: 7,
    name: 'sandbox users: one unprivileged uid per model and per build, never reused (AUTOINCREMENT)',
    sql: `
      CREATE TABLE sandbox_users (
        uid_offset INTEGER PRIMARY KEY AUTOINCREMENT,
        owner TEXT NOT NULL UNIQUE,
        created_at TEXT NOT NULL
      );
    `,
  },
];
