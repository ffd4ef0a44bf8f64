import * as path from 'node:path';

/** Where each kind of Gantry state lives under GANTRY_HOME. */
export interface HomePaths {
  root: string;
  database: string;
  temporalDatabase: string;
  adminKeyFile: string;
  /** The AES-256 key secret values are encrypted with (mode 0600; back it up). */
  secretsKeyFile: string;
  /** The generated secret async webhooks are signed with when GANTRY_WEBHOOK_SECRET is unset. */
  webhookSecretFile: string;
  archives: string;
  builds: string;
  venvs: string;
  logs: string;
  tmp: string;
}

/** Lays out the directories and files Gantry keeps under its home directory. */
export function homePaths(home: string): HomePaths {
  return {
    root: home,
    database: path.join(home, 'gantry.db'),
    temporalDatabase: path.join(home, 'temporal.db'),
    adminKeyFile: path.join(home, 'admin-api-key'),
    secretsKeyFile: path.join(home, 'secrets.key'),
    webhookSecretFile: path.join(home, 'webhook-secret'),
    archives: path.join(home, 'archives'),
    builds: path.join(home, 'builds'),
    venvs: path.join(home, 'venvs'),
    logs: path.join(home, 'logs'),
    tmp: path.join(home, 'tmp'),
  };
}

/** The uploaded archive of one deployment (of a development revision, when given). */
export function archivePath(paths: HomePaths, deploymentId: string, revision = 0): string {
  return path.join(paths.archives, revision === 0 ? `${deploymentId}.tar.gz` : `${deploymentId}.r${revision}.tar.gz`);
}

/** The unpacked, built model package of one deployment (at a development revision, when given). */
export function buildDir(paths: HomePaths, deploymentId: string, revision = 0): string {
  return path.join(paths.builds, revision === 0 ? deploymentId : `${deploymentId}.r${revision}`);
}

/** The deployment a build directory belongs to (`<id>` or `<id>.r<revision>`). */
export function deploymentOfBuildDir(name: string): string {
  return name.split('.r')[0]!;
}
