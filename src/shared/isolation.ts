/** The isolation settings of model code (docs/operations.md#model-isolation). */

/** GANTRY_ISOLATION's values: auto (sandbox when the machine can, else a warning), sandbox (required), off. */
export const ISOLATION_MODES = ['auto', 'sandbox', 'off'] as const;

/** How model code is fenced off from Gantry's files. */
export type IsolationMode = (typeof ISOLATION_MODES)[number];

/**
 * The default first sandbox uid: far above any real user's (useradd stops at 60000, systemd's
 * dynamic users at 65519, container id maps usually below 2^31), so no file on the machine
 * belongs to a model's uid by accident.
 */
export const DEFAULT_SANDBOX_UID_BASE = 2_000_000_000;

/** The lowest GANTRY_SANDBOX_UID_BASE allowed: above the range of system and login users. */
export const SANDBOX_UID_BASE_MIN = 100_000;

/** The highest valid uid (2^32 - 2; 2^32 - 1 means "no uid" to the kernel). */
export const SANDBOX_UID_MAX = 4_294_967_294;
