/**
 * The environment a model's code runs with (a replica, pip and its build backends, the build's
 * import check): only what the machine's Python and pip need from the host's environment
 * (an allow-list, so nothing of Gantry's own, such as GANTRY_API_KEY or TEMPORAL_ADDRESS, nor
 * anything else the host was started with, reaches model code), plus the model's
 * environment_variables and the variables Gantry sets for the process.
 */

/** Variables of Gantry's own that model code never sees from the host. */
export function isGantryVariable(name: string): boolean {
  return name.startsWith('GANTRY_') || name.startsWith('TEMPORAL_');
}

/** The host variables model code inherits: the search path, locale, time zone, home and temporary directory, proxies, CA bundles and pip's own settings. */
export function isInheritedVariable(name: string): boolean {
  return (
    ['PATH', 'LANG', 'LANGUAGE', 'TZ', 'HOME', 'TMPDIR', 'SSL_CERT_FILE', 'SSL_CERT_DIR', 'REQUESTS_CA_BUNDLE'].includes(name) ||
    name.startsWith('LC_') ||
    name.startsWith('PIP_') ||
    /^(http|https|no|all)_proxy$/i.test(name)
  );
}

/** The environment for model code: the inherited host variables, then the model's, then `extra` (Gantry's, which win). */
export function modelEnvironment(base: NodeJS.ProcessEnv, model: Record<string, string>, extra: Record<string, string> = {}): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = {};
  for (const [name, value] of Object.entries(base)) if (isInheritedVariable(name) && !isGantryVariable(name)) env[name] = value;
  return { ...env, ...model, ...extra };
}
