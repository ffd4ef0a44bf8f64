/** Secrets: the name rule, the value limit and the message of a missing secret, shared by API, node, activities and CLI. */

/** What a secret's name may be: letters, digits, `_`, `.` and `-`, 1 to 128 characters. */
export const SECRET_NAME_PATTERN = /^[A-Za-z0-9_.-]{1,128}$/;

/** The largest secret value accepted, in bytes of UTF-8 (64 KiB: tokens, keys, certificates). */
export const MAX_SECRET_VALUE_BYTES = 64 * 1024;

/** The team every secret belongs to in Baseten's shapes (Gantry has one). */
export const SECRET_TEAM_NAME = 'default';

/** Why a replica that declares an unset secret is not started: `secret "x" is not set`. */
export function missingSecretMessage(name: string): string {
  return `secret "${name}" is not set`;
}

/** Whether a replica's error is a missing secret's (it is then a deploy failure's whole message). */
export function isMissingSecretMessage(message: string): boolean {
  return /^secret "[A-Za-z0-9_.-]{1,128}" is not set$/.test(message);
}

/** The secret names a model's config declares (`secrets: {name: null, …}`), sorted. */
export function declaredSecretNames(config: { secrets?: Record<string, unknown> } | null | undefined): string[] {
  return Object.keys(config?.secrets ?? {}).sort();
}
