#!/usr/bin/env node
// Summarize StrykerJS's JSON report (mutation-testing-report-schema) as Markdown: the score per
// mutated file and every mutant that survived (line, mutator, replacement). Used by `make mutation`.
import { readFileSync } from 'node:fs';

const report = JSON.parse(readFileSync(process.argv[2] ?? 'bench/results/mutation.json', 'utf8'));
const detected = new Set(['Killed', 'Timeout']);
const undetected = new Set(['Survived', 'NoCoverage']);
const lines = ['# Mutation testing: the data rule and the brake', '',
  `StrykerJS ${report.framework?.version ?? ''} with the vitest runner (\`make mutation\`, ${new Date().toISOString().slice(0, 10)}).`,
  'Score = killed (incl. timeouts) / (killed + survived + no coverage); compile errors are not counted.', '',
  '| File | Mutants | Killed | Survived | No coverage | Score |', '|---|---|---|---|---|---|'];
const survivors = [];
let allDetected = 0;
let allUndetected = 0;
for (const [file, f] of Object.entries(report.files).sort()) {
  const ms = f.mutants;
  const k = ms.filter((m) => detected.has(m.status)).length;
  const s = ms.filter((m) => m.status === 'Survived').length;
  const n = ms.filter((m) => m.status === 'NoCoverage').length;
  allDetected += k;
  allUndetected += s + n;
  const counted = k + s + n;
  lines.push(`| \`${file}\` | ${counted} | ${k} | ${s} | ${n} | ${counted ? ((100 * k) / counted).toFixed(1) : '-'} % |`);
  for (const m of ms.filter((x) => undetected.has(x.status))) {
    survivors.push(`| \`${file}\`:${m.location.start.line} | ${m.mutatorName} | ${m.status} | \`${String(m.replacement ?? '').replace(/\s+/g, ' ').replace(/\|/g, '\\|').slice(0, 80)}\` |`);
  }
}
const total = allDetected + allUndetected;
lines.push(`| **all** | ${total} | ${allDetected} | | | **${total ? ((100 * allDetected) / total).toFixed(1) : '-'} %** |`, '');
lines.push('## Surviving mutants', '', '| Where | Mutator | Status | Replacement |', '|---|---|---|---|', ...survivors, '');
process.stdout.write(lines.join('\n'));
