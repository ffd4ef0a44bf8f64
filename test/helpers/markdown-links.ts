/**
 * Finds the links of markdown files and checks that each relative one resolves: the file exists
 * and, with a #fragment, the target has that anchor under GitHub's rules.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';

/** A link as written in a markdown file. */
export interface MarkdownLink {
  file: string;
  line: number;
  target: string;
}

/** Blanks out fenced code blocks and inline code spans (keeping line numbers), where links are text. */
export function withoutCode(markdown: string): string {
  const lines = markdown.split('\n');
  let fence: string | null = null;
  const kept = lines.map((line) => {
    const opening = /^ {0,3}(`{3,}|~{3,})/.exec(line);
    if (fence) {
      if (opening && opening[1][0] === fence[0] && opening[1].length >= fence.length && line.trim() === opening[1]) fence = null;
      return '';
    }
    if (opening) {
      fence = opening[1];
      return '';
    }
    return line;
  });
  return kept.join('\n').replace(/(`+)[^`]*?\1/g, (span) => span.replace(/[^\n]/g, ' '));
}

/** The text a heading renders as: code spans unwrapped, links to their text, HTML tags dropped. */
function renderedHeadingText(heading: string): string {
  return heading
    .replace(/!?\[([^\]]*)\]\([^)]*\)/g, '$1')
    .replace(/`([^`]*)`/g, '$1')
    .replace(/<[^>]+>/g, '')
    .replace(/\s+#+\s*$/, '')
    .trim();
}

/** GitHub's anchor for a heading: lowercased, punctuation dropped (not `-` or `_`), each space a dash. */
export function githubSlug(heading: string): string {
  return renderedHeadingText(heading)
    .toLowerCase()
    .replace(/[^\p{L}\p{M}\p{N}\p{Pc} -]/gu, '')
    .replace(/ /g, '-');
}

/** Every anchor a markdown file has: its headings' slugs (repeats numbered -1, -2, … as GitHub does) and explicit ids. */
export function anchorsOf(markdown: string): Set<string> {
  const anchors = new Set<string>();
  const seen = new Map<string, number>();
  const add = (slug: string): void => {
    const count = seen.get(slug) ?? 0;
    seen.set(slug, count + 1);
    anchors.add(count === 0 ? slug : `${slug}-${count}`);
  };
  const lines = markdown.split('\n');
  let fence: string | null = null;
  for (const [i, line] of lines.entries()) {
    const opening = /^ {0,3}(`{3,}|~{3,})/.exec(line);
    if (fence) {
      if (opening && opening[1][0] === fence[0] && opening[1].length >= fence.length && line.trim() === opening[1]) fence = null;
      continue;
    }
    if (opening) {
      fence = opening[1];
      continue;
    }
    const atx = /^ {0,3}#{1,6}\s+(.*)$/.exec(line);
    if (atx) {
      add(githubSlug(atx[1]));
      continue;
    }
    const previous = lines[i - 1];
    if (/^ {0,3}(=+|-+)\s*$/.test(line) && previous !== undefined && previous.trim() !== '' && !/^ {0,3}(#|[-*+] |\||>)/.test(previous)) {
      add(githubSlug(previous));
    }
  }
  for (const match of withoutCode(markdown).matchAll(/<a\s[^>]*\b(?:id|name)="([^"]+)"/g)) anchors.add(match[1]);
  return anchors;
}

/** Every link, image and HTML href/src of a markdown file, outside code. */
export function linksOf(file: string, markdown: string): MarkdownLink[] {
  const text = withoutCode(markdown);
  const lineAt = (index: number): number => text.slice(0, index).split('\n').length;
  const links: MarkdownLink[] = [];
  for (const match of text.matchAll(/!?\[[^\]]*\]\(\s*<?([^)\s>]+)>?(?:\s+"[^"]*")?\s*\)/g)) {
    links.push({ file, line: lineAt(match.index), target: match[1] });
  }
  for (const match of text.matchAll(/^ {0,3}\[[^\]]+\]:\s+<?(\S+?)>?(?:\s|$)/gm)) links.push({ file, line: lineAt(match.index), target: match[1] });
  for (const match of text.matchAll(/<(?:a|img)\s[^>]*\b(?:href|src)="([^"]+)"/g)) links.push({ file, line: lineAt(match.index), target: match[1] });
  return links;
}

/** Why a link does not resolve, or null when it does (links with a scheme, such as https:, are not followed). */
export function brokenReason(link: MarkdownLink): string | null {
  if (/^[a-z][a-z0-9+.-]*:/i.test(link.target)) return null;
  const hash = link.target.indexOf('#');
  const filePart = decodeURIComponent(hash < 0 ? link.target : link.target.slice(0, hash));
  const fragment = hash < 0 ? null : decodeURIComponent(link.target.slice(hash + 1));
  const targetFile = filePart === '' ? link.file : path.resolve(path.dirname(link.file), filePart);
  if (!fs.existsSync(targetFile)) return `no file ${path.relative(path.dirname(link.file), targetFile)}`;
  if (fragment === null || fragment === '') return null;
  if (!targetFile.endsWith('.md')) return `#${fragment} in a file that is not markdown`;
  if (!anchorsOf(fs.readFileSync(targetFile, 'utf8')).has(fragment)) return `no heading #${fragment} in ${path.basename(targetFile)}`;
  return null;
}
