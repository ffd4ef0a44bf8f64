/** Every workflow the worker runs (this module is what the worker bundles). */
export { deployWorkflow } from './deploy';
export { promotionWorkflow } from './promotion';
export { developmentUpdateWorkflow } from './development';
export { asyncPredictionWorkflow } from './async-prediction';
