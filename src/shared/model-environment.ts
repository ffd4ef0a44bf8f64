/**
 * The environment a model's code runs with: the machine's, minus Gantry's own settings and
 * secrets (API keys, Temporal address), plus the model's environment_variables.
 */

/** Variables of Gantry's own that model code never sees. */
export function isGantryVariable(name: string): boolean {
  return name.startsWith('GANTRY_') || name.startsWith('TEMPORAL_');
}

/** The environment for model code (a replica, or the build's import check). */
export function modelEnvironment(base: NodeJS.ProcessEnv, model: Record<string, string>, extra: Record<string, string> = {}): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = {};
  for (const [name, value] of Object.entries(base)) if (!isGantryVariable(name)) env[name] = value;
  return { ...env, ...model, ...extra };
}
