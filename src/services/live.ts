/**
 * What the dashboard's live stream sends: every model at a glance, or one model in full. Built
 * from the same services as the API's answers, so an event and a GET always agree.
 */
import type { ModelDetail, ModelOverview, TemporalUiLink } from '../shared/views';
import type { ModelRecord, Store } from '../store/store';
import type { DeploymentService } from './deployments';
import type { EnvironmentService } from './environments';
import { deploymentView, modelView } from './views';

/** How many audit entries a model's live view carries. */
export const LIVE_AUDIT_ENTRIES = 100;

/** What the live views are built from. */
export interface LiveViewDeps {
  store: Store;
  deployments: DeploymentService;
  environments: EnvironmentService;
  temporalUi?: TemporalUiLink;
}

/** Builds the live stream's views. */
export class LiveViews {
  constructor(private readonly deps: LiveViewDeps) {}

  /** Every model, oldest first, with its deployments. */
  async overview(): Promise<ModelOverview[]> {
    const { store } = this.deps;
    // Built on every change the store reports: the replicas are read once for all models.
    const [models, replicas] = await Promise.all([store.listModels(), store.listReplicas()]);
    return Promise.all(
      models.map(async (model) => {
        const [records, environments] = await Promise.all([store.listDeployments(model.id), store.listEnvironments(model.id)]);
        return { model: modelView(model, records, environments), deployments: records.map((record) => deploymentView(record, environments, replicas)) };
      }),
    );
  }

  /** One model with its deployments, environments (with the promotion in flight) and latest audit entries. */
  async detail(model: ModelRecord): Promise<ModelDetail> {
    const { store, deployments, environments } = this.deps;
    const [records, environmentRecords, audit] = await Promise.all([
      deployments.listOf(model),
      store.listEnvironments(model.id),
      store.listAudit(model.id, { limit: LIVE_AUDIT_ENTRIES }),
    ]);
    return {
      model: modelView(model, records, environmentRecords),
      temporal_ui: this.deps.temporalUi ?? null,
      deployments: await deployments.views(model, records),
      environments: await environments.list(model),
      audit_logs: audit,
    };
  }
}
