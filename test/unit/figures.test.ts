import { strict as assert } from 'node:assert';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { PROJECT_ROOT } from '../../src/shared/project-paths';

const read = (file: string): string => fs.readFileSync(path.join(PROJECT_ROOT, file), 'utf8');

/** The cells of the markdown table whose header row starts with `header`, row by row. */
function tableRows(markdown: string, header: string): string[][] {
  const lines = markdown.split('\n');
  const start = lines.findIndex((line) => line.startsWith(header));
  assert.ok(start >= 0, `no table starting ${header}`);
  const rows: string[][] = [];
  for (const line of lines.slice(start + 2)) {
    if (!line.startsWith('|')) break;
    rows.push(
      line
        .split(/(?<!\\)\|/)
        .slice(1, -1)
        .map((cell) => cell.trim()),
    );
  }
  return rows;
}

describe('the test counts', () => {
  it("are said in one place, docs/testing.md's table, whose layers add up to its total and to the README's figure", () => {
    const rows = tableRows(read('docs/testing.md'), '| layer | command | tests |');
    const total = rows.find((row) => row[0] === '**total**');
    assert.ok(total, 'docs/testing.md has a total row');
    const layers = rows.filter((row) => row !== total);
    const sum = layers.reduce((all, row) => all + (row[2].match(/\d+/g) ?? []).reduce((cell, n) => cell + Number(n), 0), 0);
    assert.equal(Number(total[2].replace(/\D/g, '')), sum, `the layers add up to ${sum}`);

    const readme = read('README.md');
    const stated = [...readme.matchAll(/\b(\d[\d,]*) tests\b/g)].map((match) => Number(match[1].replace(/,/g, '')));
    assert.deepEqual(stated, [sum], 'the README states the number of tests once, as the total of docs/testing.md');
  });
});
