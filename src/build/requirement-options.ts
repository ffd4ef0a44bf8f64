/**
 * Requirement lines that are pip options (`-r file`, `--index-url …`, a per-requirement
 * `--global-option`) change what pip reads and where it fetches from: `-r /path/to/a/key`
 * would make pip print a file's contents in its error. They are refused unless the operator
 * allows the option (GANTRY_PIP_ALLOWED_OPTIONS).
 */

/** pip's short options, by the long name an operator allows them with. */
const SHORT_OPTIONS: Record<string, string> = {
  '-r': '--requirement',
  '-c': '--constraint',
  '-e': '--editable',
  '-i': '--index-url',
  '-f': '--find-links',
};

/** The pip options a requirement line uses, by their long names (`-i URL` → `--index-url`). */
export function pipOptionsOf(line: string): string[] {
  const options: string[] = [];
  for (const token of line.trim().split(/\s+/)) {
    if (!token.startsWith('-')) continue;
    const name = token.startsWith('--') ? token.split('=')[0]! : token.slice(0, 2);
    options.push(SHORT_OPTIONS[name] ?? name);
  }
  return options;
}

/** The first refusal among `requirements` (naming the line and its option), or undefined when every option used is allowed. */
export function refusedRequirement(requirements: string[], allowedOptions: string[]): string | undefined {
  const allowed = new Set(allowedOptions.map((option) => SHORT_OPTIONS[option] ?? option));
  for (const line of requirements) {
    const refused = pipOptionsOf(line).find((option) => !allowed.has(option));
    if (refused !== undefined) {
      return `requirement "${line}" uses the pip option ${refused}, which this server does not allow in requirements (GANTRY_PIP_ALLOWED_OPTIONS${allowed.size > 0 ? ` allows ${[...allowed].join(', ')}` : ' allows none'})`;
    }
  }
  return undefined;
}
