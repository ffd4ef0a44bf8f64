/**
 * Where the CLI sends requests and with which key: GANTRY_URL, GANTRY_GATEWAY_URL and
 * GANTRY_API_KEY from the environment, else what `gantry login` saved, else the local
 * stack's defaults and the key `npm start` generated under GANTRY_HOME.
 */
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { homePaths } from '../home';

/** Where and how to reach a Gantry stack. */
export interface Credentials {
  apiUrl: string;
  gatewayUrl: string;
  apiKey: string | undefined;
}

/** The file `gantry login` writes (GANTRY_CONFIG_FILE overrides). */
export function credentialsFile(env: NodeJS.ProcessEnv = process.env): string {
  if (env.GANTRY_CONFIG_FILE) return path.resolve(env.GANTRY_CONFIG_FILE);
  const base = env.XDG_CONFIG_HOME || path.join(os.homedir(), '.config');
  return path.join(base, 'gantry', 'credentials.json');
}

function readSaved(file: string): Partial<Credentials> {
  try {
    const saved = JSON.parse(fs.readFileSync(file, 'utf8')) as Partial<Credentials>;
    return typeof saved === 'object' && saved !== null ? saved : {};
  } catch {
    return {};
  }
}

function readLocalKey(env: NodeJS.ProcessEnv): string | undefined {
  try {
    return fs.readFileSync(homePaths(path.resolve(env.GANTRY_HOME || '.gantry')).adminKeyFile, 'utf8').trim() || undefined;
  } catch {
    return undefined;
  }
}

/** Resolves the credentials the CLI uses, in the order the module comment gives. */
export function resolveCredentials(env: NodeJS.ProcessEnv = process.env): Credentials {
  const saved = readSaved(credentialsFile(env));
  const host = env.GANTRY_HOST || '127.0.0.1';
  return {
    apiUrl: (env.GANTRY_URL || saved.apiUrl || `http://${host}:${env.GANTRY_API_PORT || 8080}`).replace(/\/+$/, ''),
    gatewayUrl: (env.GANTRY_GATEWAY_URL || saved.gatewayUrl || `http://${host}:${env.GANTRY_GATEWAY_PORT || 8081}`).replace(/\/+$/, ''),
    apiKey: env.GANTRY_API_KEY || saved.apiKey || readLocalKey(env),
  };
}

/** Saves credentials for later commands (mode 0600). */
export function saveCredentials(credentials: Credentials, env: NodeJS.ProcessEnv = process.env): string {
  const file = credentialsFile(env);
  fs.mkdirSync(path.dirname(file), { recursive: true });
  fs.writeFileSync(file, `${JSON.stringify(credentials, null, 2)}\n`, { mode: 0o600 });
  return file;
}
