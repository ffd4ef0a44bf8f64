import { strict as assert } from 'node:assert';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { PROJECT_ROOT } from '../../src/shared/project-paths';
import { anchorsOf, brokenReason, githubSlug, linksOf } from '../helpers/markdown-links';

/** The markdown a reader of the repository sees first: the root's files and docs/. */
function documentationFiles(): string[] {
  const inDir = (dir: string): string[] =>
    fs
      .readdirSync(dir)
      .filter((name) => name.endsWith('.md'))
      .map((name) => path.join(dir, name));
  return [...inDir(PROJECT_ROOT), ...inDir(path.join(PROJECT_ROOT, 'docs'))];
}

describe('markdown links', () => {
  it('makes anchors as GitHub does: lowercase, punctuation dropped, spaces to dashes, repeats numbered', () => {
    assert.equal(githubSlug('Walkthrough: a rolling promotion under load'), 'walkthrough-a-rolling-promotion-under-load');
    assert.equal(githubSlug('The fault-injection run (`npm run chaos`)'), 'the-fault-injection-run-npm-run-chaos');
    assert.equal(githubSlug('Wake without a request: `POST …/wake` and `gantry wake`'), 'wake-without-a-request-post-wake-and-gantry-wake');
    assert.equal(githubSlug('## 9. GANTRY_HOME'.replace(/^#+ /, '')), '9-gantry_home');
    assert.equal(githubSlug('The promotion state × action table'), 'the-promotion-state--action-table');
    assert.equal(githubSlug('Async inference (API, `:8080`)'), 'async-inference-api-8080');
    assert.deepEqual([...anchorsOf('# A\n\n## Notes\n\n```\n# not a heading\n```\n\n### Notes\n\nSetext\n---\n')], ['a', 'notes', 'notes-1', 'setext']);
  });

  it('finds links outside code only, images and HTML included', () => {
    const links = linksOf('/x/README.md', 'see [a](docs/a.md#b) and ![p](docs/p.png)\n`[not](a link)`\n```\n[nor](this)\n```\n<img src="i.png" alt="">\n[multi\nline](c.md)\n');
    assert.deepEqual(
      links.map((link) => `${link.line} ${link.target}`),
      ['1 docs/a.md#b', '1 docs/p.png', '7 c.md', '6 i.png'],
    );
  });

  it('reports a missing file and a missing anchor', () => {
    const readme = path.join(PROJECT_ROOT, 'README.md');
    assert.equal(brokenReason({ file: readme, line: 1, target: 'docs/nope.md' }), 'no file docs/nope.md');
    assert.equal(brokenReason({ file: readme, line: 1, target: 'docs/testing.md#nope' }), 'no heading #nope in testing.md');
    assert.equal(brokenReason({ file: readme, line: 1, target: 'docs/testing.md#benchmarks' }), null);
    assert.equal(brokenReason({ file: readme, line: 1, target: 'https://example.com/#anything' }), null);
  });

  it('in README.md and docs/*.md all resolve (files and #anchors)', () => {
    const files = documentationFiles();
    assert.ok(files.some((file) => file.endsWith('README.md')) && files.length > 10, `found ${files.length} files`);
    const links = files.flatMap((file) => linksOf(file, fs.readFileSync(file, 'utf8')));
    assert.ok(links.length > 100, `found only ${links.length} links`);
    const broken = links
      .map((link) => ({ link, reason: brokenReason(link) }))
      .filter(({ reason }) => reason !== null)
      .map(({ link, reason }) => `${path.relative(PROJECT_ROOT, link.file)}:${link.line} ${link.target}: ${reason}`);
    assert.deepEqual(broken, [], `broken links:\n${broken.join('\n')}`);
  });
});
