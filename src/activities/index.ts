/** Every activity the worker registers, built from the worker's dependencies. */
import { createAsyncPredictionActivities } from './async-predictions';
import { createBuildActivities } from './build';
import type { ActivityDeps } from './deps';
import { createPromotionActivities } from './promotions';
import { createRecordActivities } from './records';
import { createScalingActivities } from './scaling';
import { createTrafficActivities } from './traffic';

export type { ActivityDeps } from './deps';

/** Creates all of Gantry's activities around the given store and paths. */
export function createActivities(deps: ActivityDeps) {
  return {
    ...createBuildActivities(deps),
    ...createRecordActivities(deps),
    ...createPromotionActivities(deps),
    ...createScalingActivities(deps),
    ...createTrafficActivities(deps),
    ...createAsyncPredictionActivities(deps),
  };
}

/** The activity functions, as workflows see them through proxyActivities. */
export type Activities = ReturnType<typeof createActivities>;
