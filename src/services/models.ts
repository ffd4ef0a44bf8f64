/** Models: listing and look-up, each shown with its production and development deployments. */
import type { Store } from '../store/store';
import { notFound } from './errors';
import { modelView } from './views';
import type { ModelView } from '../shared/views';

/** Operations on models. */
export class ModelService {
  constructor(private readonly store: Store) {}

  /** Every model, oldest first. */
  async list(): Promise<ModelView[]> {
    const models = await this.store.listModels();
    return Promise.all(models.map(async (model) => modelView(model, await this.store.listDeployments(model.id), await this.store.listEnvironments(model.id))));
  }

  /** One model by id or name, or not_found. */
  async get(idOrName: string): Promise<ModelView> {
    const model = await this.store.getModel(idOrName);
    if (!model) throw notFound(`model ${idOrName} not found`);
    return modelView(model, await this.store.listDeployments(model.id), await this.store.listEnvironments(model.id));
  }
}
