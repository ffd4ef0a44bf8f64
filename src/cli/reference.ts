/**
 * The CLI reference (docs/cli-reference.md), rendered from the commander definitions so that it
 * cannot drift from them: `npm run docs:cli` writes it, a unit test compares it.
 */
import type { Argument, Command, Option } from 'commander';

/** Where the reference lives, relative to the project root. */
export const CLI_REFERENCE_FILE = 'docs/cli-reference.md';

/** Escapes text for a markdown table cell (or a paragraph): no emphasis, no HTML, no cell breaks. */
function markdownText(text: string): string {
  return text.replace(/[\\`*_[\]<>|]/g, (c) => `\\${c}`);
}

/** A command's full name as typed, e.g. `gantry rollout status`. */
function fullName(command: Command): string {
  const names: string[] = [];
  for (let at: Command | null = command; at; at = at.parent) names.unshift(at.name());
  return names.join(' ');
}

/** The GitHub anchor of a `## \`gantry …\`` heading. */
function anchorOf(command: Command): string {
  return fullName(command).replace(/ /g, '-');
}

/** Every command under `root` (root included), depth first in definition order. */
function allCommands(root: Command): Command[] {
  return [root, ...root.commands.flatMap((child) => allCommands(child))];
}

function defaultOf(value: unknown, description: string | undefined): string {
  if (description !== undefined) return `\`${description}\``;
  if (value === undefined) return '';
  return `\`${JSON.stringify(value)}\``;
}

function argumentRow(argument: Argument): string {
  const name = `${argument.required ? '<' : '['}${argument.name()}${argument.variadic ? '...' : ''}${argument.required ? '>' : ']'}`;
  const choices = argument.argChoices ? ` (one of ${argument.argChoices.map((c) => `\`${c}\``).join(', ')})` : '';
  return `| \`${name}\` | ${argument.required ? 'yes' : 'no'} | ${markdownText(argument.description)}${choices} | ${defaultOf(argument.defaultValue, argument.defaultValueDescription)} |`;
}

function optionRow(option: Option): string {
  const choices = option.argChoices ? ` (one of ${option.argChoices.map((c) => `\`${c}\``).join(', ')})` : '';
  const required = option.mandatory ? ' **Required.**' : '';
  return `| \`${option.flags}\` | ${markdownText(option.description)}${choices}${required} | ${defaultOf(option.defaultValue, option.defaultValueDescription)} |`;
}

function commandSection(command: Command): string[] {
  const help = command.createHelp();
  const lines = [`## \`${fullName(command)}\``, '', markdownText(command.description()), '', '```', help.commandUsage(command), '```', ''];
  if (command.registeredArguments.length > 0) {
    lines.push('| argument | required | description | default |', '|---|---|---|---|', ...command.registeredArguments.map(argumentRow), '');
  }
  const options = command.options.filter((option) => !option.hidden);
  if (options.length > 0) {
    lines.push('| option | description | default |', '|---|---|---|', ...options.map(optionRow), '');
  }
  const subcommands = command.commands.filter((child) => child.name() !== 'help');
  if (subcommands.length > 0) {
    lines.push(
      '| command | description |',
      '|---|---|',
      ...subcommands.map((child) => `| [\`${fullName(child)}\`](#${anchorOf(child)}) | ${markdownText(child.description())} |`),
      '',
    );
  }
  return lines;
}

/** The whole reference as markdown, one section per command and subcommand. */
export function renderCliReference(program: Command): string {
  const lines = [
    '# CLI reference',
    '',
    '<!-- Generated from the command definitions (src/cli/main.ts) by `npm run docs:cli`: edit those, not this file. A unit test fails when it is out of date. -->',
    '',
    `Every command of \`${program.name()}\` with its arguments and options, as \`--help\` gives them. Every command also takes`,
    '`-h, --help`. What each command prints, more about its options, and where the CLI finds the stack: [the CLI guide](cli.md).',
    '',
    ...allCommands(program).flatMap(commandSection),
  ];
  return `${lines.join('\n').replace(/\n+$/, '')}\n`;
}
