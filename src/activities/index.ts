/** Every activity the worker registers, built from the worker's dependencies. */
import { createAsyncPredictionActivities } from './async-predictions';
import { createBuildActivities } from './build';
import type { Activities } from '../contracts/activities';
import type { ActivityDeps } from './deps';
import { createPromotionActivities } from './promotions';
import { createRecordActivities } from './records';
import { createScalingActivities } from './scaling';
import { createTrafficActivities } from './traffic';

export type { ActivityDeps } from './deps';

/** Creates all of Gantry's activities around the given store and paths, as the workflows' contract names them. */
export function createActivities(deps: ActivityDeps): Activities {
  return {
    ...createBuildActivities(deps),
    ...createRecordActivities(deps),
    ...createPromotionActivities(deps),
    ...createScalingActivities(deps),
    ...createTrafficActivities(deps),
    ...createAsyncPredictionActivities(deps),
  };
}
