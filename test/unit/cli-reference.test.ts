import { strict as assert } from 'node:assert';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { buildProgram } from '../../src/cli/main';
import { CLI_REFERENCE_FILE, renderCliReference } from '../../src/cli/reference';
import { PROJECT_ROOT } from '../../src/shared/project-paths';

describe('the CLI reference (docs/cli-reference.md)', () => {
  const committed = fs.readFileSync(path.join(PROJECT_ROOT, CLI_REFERENCE_FILE), 'utf8');
  const generated = renderCliReference(buildProgram());

  it('is what the command definitions generate', () => {
    if (committed === generated) return;
    const committedLines = committed.split('\n');
    const generatedLines = generated.split('\n');
    const first = generatedLines.findIndex((line, i) => line !== committedLines[i]);
    assert.fail(
      `${CLI_REFERENCE_FILE} is out of date: run \`npm run docs:cli\` and commit it.\n` +
        `First difference at line ${first + 1}:\n  committed: ${committedLines[first] ?? '(end of file)'}\n  generated: ${generatedLines[first] ?? '(end of file)'}`,
    );
  });

  it('has a section for every command and subcommand, with each of its arguments and options', () => {
    const program = buildProgram();
    const walk = (command: typeof program, names: string[]): void => {
      if (command.name() === 'help') return;
      const heading = `## \`${[...names, command.name()].join(' ')}\``;
      const section = generated.split(heading + '\n')[1]?.split('\n## ')[0];
      assert.ok(section !== undefined, `no section ${heading}`);
      for (const argument of command.registeredArguments) assert.match(section, new RegExp(`\\| \`[<[]${argument.name()}`), `${heading}: argument ${argument.name()}`);
      for (const option of command.options) assert.ok(section.includes(`| \`${option.flags}\` |`), `${heading}: option ${option.flags}`);
      for (const child of command.commands) walk(child, [...names, command.name()]);
    };
    walk(program, []);
    assert.ok(generated.includes('## `gantry rollout force-complete`'));
    assert.ok(generated.includes('| `--timeout-seconds <s>` | how long --wait waits | `"1800"` |'), 'defaults are shown');
  });
});
