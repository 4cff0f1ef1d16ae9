import { describe, expect, it } from 'vitest';
import { printable } from '../../../src/util/printable.js';
import { formatManifestError } from '../../../src/manifest/index.js';
import { jsonLogger } from '../../../src/watch/logger.js';

describe('printable: the one escaping of what is printed from manifests and hosts', () => {
  it('escapes C0, DEL, C1 and bidi controls as \\uXXXX; leaves text, UTF-8 letters and (on request) newlines', () => {
    expect(printable('a\u001b]0;x\u0007b\u009b31mc\u007fd')).toBe('a\\u001b]0;x\\u0007b\\u009b31mc\\u007fd');
    expect(printable('evil\u202egnp.yaml')).toBe('evil\\u202egnp.yaml');
    expect(printable('line1\nline2\ttab')).toBe('line1\\u000aline2\\u0009tab');
    expect(printable('line1\nline2\u001b', { keepNewlines: true })).toBe('line1\nline2\\u001b');
    expect(printable('Grüße /var/lib/x y.qcow2')).toBe('Grüße /var/lib/x y.qcow2');
  });

  it('is applied to manifest errors and to the watcher\'s JSON log lines (which still parse to the same text)', () => {
    expect(formatManifestError({ file: 'a\u001b[2J.yaml', line: 1, col: 2, message: 'bad \u009b value' })).toBe('a\\u001b[2J.yaml:1:2: bad \\u009b value');
    const lines: string[] = [];
    jsonLogger({ write: (l) => lines.push(l) }).info('file', { file: 'x\u009by\u202e.yaml' });
    expect(lines[0]).not.toMatch(/[\u0000-\u0009\u000b-\u001f\u007f-\u009f\u202e]/);
    expect((JSON.parse(lines[0]!) as { file: string }).file).toBe('x\u009by\u202e.yaml');
  });
});
