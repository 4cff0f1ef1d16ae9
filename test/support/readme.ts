/**
 * The README as test input: its sections, its fenced code blocks (with their language and line),
 * and the walkthrough's text mapped onto a suite's names, so the user's guide is run as written.
 */
import { readFileSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '../..');
export const README_PATH = join(ROOT, 'README.md');

export interface CodeBlock {
  lang: string;
  /** 1-based line of the first line inside the fence. */
  line: number;
  text: string;
}

export function readme(): string {
  return readFileSync(README_PATH, 'utf8');
}

/** Every fenced block of a Markdown text (``` fences only, as the README uses). */
export function codeBlocks(md: string, firstLine = 1): CodeBlock[] {
  const lines = md.split('\n');
  const out: CodeBlock[] = [];
  for (let i = 0; i < lines.length; i++) {
    const open = /^```(\S*)\s*$/.exec(lines[i]!);
    if (!open) continue;
    const start = i + 1;
    let j = start;
    while (j < lines.length && !/^```\s*$/.test(lines[j]!)) j++;
    if (j >= lines.length) throw new Error(`README line ${firstLine + i}: a code fence is never closed`);
    out.push({ lang: open[1] ?? '', line: firstLine + start, text: lines.slice(start, j).join('\n') + '\n' });
    i = j;
  }
  return out;
}

/** The text of the `## title` section (to the next `## ` heading), with the line it starts at. */
export function section(md: string, title: string): { text: string; line: number } {
  const lines = md.split('\n');
  const at = lines.findIndex((l) => l === `## ${title}`);
  if (at < 0) throw new Error(`README has no section "## ${title}"`);
  let end = at + 1;
  while (end < lines.length && !lines[end]!.startsWith('## ')) end++;
  return { text: lines.slice(at + 1, end).join('\n'), line: at + 2 };
}

/** The shell commands of a `sh` block: one per line, comments and blank lines dropped. */
export function shellCommands(block: CodeBlock): { argv: string[]; comment: string }[] {
  return block.text.split('\n').map((l) => l.trim()).filter((l) => l && !l.startsWith('#')).map((l) => {
    const hash = l.indexOf(' #');
    const cmd = hash >= 0 ? l.slice(0, hash) : l;
    return { argv: cmd.trim().split(/\s+/), comment: hash >= 0 ? l.slice(hash + 2).trim() : '' };
  });
}

/** The `backticked` phrases of a text, in order, line breaks inside one as spaces. */
export function quoted(text: string): string[] {
  return [...text.matchAll(/`([^`]+)`/g)].map((m) => m[1]!.replace(/\s+/g, ' '));
}
