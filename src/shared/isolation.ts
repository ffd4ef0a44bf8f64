/** The isolation settings of model code (docs/operations.md#model-isolation). */
import { createHash } from 'node:crypto';

/** GANTRY_ISOLATION's values: auto (sandbox when the machine can, else a warning), sandbox (required), off. */
export const ISOLATION_MODES = ['auto', 'sandbox', 'off'] as const;

/** How model code is fenced off from Gantry's files. */
export type IsolationMode = (typeof ISOLATION_MODES)[number];

/**
 * Where the default sandbox uid ranges start: far above any real user's (useradd stops at
 * 60000, systemd's dynamic users at 65519, container id maps usually below 2^31), so no file on
 * the machine belongs to a model's uid by accident.
 */
export const DEFAULT_SANDBOX_UID_BASE = 2_000_000_000;

/** How many uids one GANTRY_HOME may give out (models and builds together). */
export const SANDBOX_UIDS_PER_HOME = 2 ** 20;

/** How many ranges of SANDBOX_UIDS_PER_HOME uids fit between DEFAULT_SANDBOX_UID_BASE and the last valid uid. */
const SANDBOX_UID_RANGES = 2048;

/**
 * The first sandbox uid of a GANTRY_HOME when GANTRY_SANDBOX_UID_BASE is not set: one of 2048
 * ranges, chosen by a hash of the home's path, so that two Gantry homes on one machine (two
 * installs, or test stacks running side by side) almost never share uids, since a build's end
 * kills every process of its uid.
 */
export function defaultSandboxUidBase(home: string): number {
  const range = createHash('sha256').update(home).digest().readUInt32BE(0) % SANDBOX_UID_RANGES;
  return DEFAULT_SANDBOX_UID_BASE + range * SANDBOX_UIDS_PER_HOME;
}

/** The lowest GANTRY_SANDBOX_UID_BASE allowed: above the range of system and login users. */
export const SANDBOX_UID_BASE_MIN = 100_000;

/** The highest valid uid (2^32 - 2; 2^32 - 1 means "no uid" to the kernel). */
export const SANDBOX_UID_MAX = 4_294_967_294;
