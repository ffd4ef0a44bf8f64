/**
 * Secrets: set (create or rotate), list and delete. Values are sealed here, as soon as they
 * arrive, and never leave this service; only names go to the audit log. Knows nothing of HTTP.
 */
import type { HomePaths } from '../home';
import { SecretBox } from '../secrets/secret-box';
import { SECRET_TEAM_NAME } from '../shared/secrets';
import type { SecretView } from '../shared/views';
import type { UpsertSecretRequest } from '../shared/schemas';
import type { SecretDeleted } from '../shared/views';
import type { SecretRecord, Store } from '../store/store';
import type { Actor } from './deployments';
import { notFound } from './errors';

/** What the secret service needs. */
export interface SecretServiceDeps {
  store: Store;
  paths: HomePaths;
}

/** How the API shows a stored secret. */
export function secretView(secret: SecretRecord): SecretView {
  return { id: secret.id, name: secret.name, created_at: secret.created_at, team_name: SECRET_TEAM_NAME };
}

/** Operations on secrets. */
export class SecretService {
  private box: SecretBox | undefined;

  constructor(private readonly deps: SecretServiceDeps) {}

  /** Every secret, by name, without values. */
  async list(): Promise<SecretView[]> {
    return (await this.deps.store.listSecrets()).map(secretView);
  }

  /** Creates the secret or rotates its value (its id stays); audited by name only. */
  async set(request: UpsertSecretRequest, actor: Actor): Promise<SecretView> {
    this.box ??= SecretBox.fromKeyFile(this.deps.paths.secretsKeyFile);
    const { secret, created } = await this.deps.store.upsertSecret(request.name, this.box.seal(request.name, request.value));
    await this.deps.store.appendAudit({
      model_id: null,
      actor: actor.name,
      source: actor.source,
      action: 'SET_SECRET',
      target: request.name,
      details: { name: request.name, change: created ? 'created' : 'rotated' },
    });
    return secretView(secret);
  }

  /** Deletes a secret by name, or not_found. */
  async delete(name: string, actor: Actor): Promise<SecretDeleted> {
    if (!(await this.deps.store.deleteSecret(name))) throw notFound(`secret ${name} not found`);
    await this.deps.store.appendAudit({ model_id: null, actor: actor.name, source: actor.source, action: 'DELETE_SECRET', target: name, details: { name } });
    return { name };
  }
}
