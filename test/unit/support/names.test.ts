/**
 * The per-suite name allocator (test/support/names.ts): no suite's prefix is a prefix of another's,
 * each suite has its own subnets and MACs, and the suites on the real libvirtd name their objects
 * through it (a literal `vftest-…` name in such a file would escape the check).
 */
import { describe, expect, it } from 'vitest';
import { readdirSync, readFileSync } from 'node:fs';
import { join, relative } from 'node:path';
import { ROOT } from '../../support/cli.js';
import { registryProblems, suiteNames, SUITES, type SuiteId } from '../../support/names.js';

describe('suite names', () => {
  it('the registry has no prefix collisions and no shared numbers', () => {
    expect(registryProblems()).toEqual([]);
  });

  it('rejects a dash in an id (vftest-url- is a prefix of vftest-url-crash-), a shared number, a bad number', () => {
    expect(registryProblems({ url: 1, 'url-crash': 2 })).toEqual(expect.arrayContaining([
      expect.stringContaining('suite id url-crash'),
      'vftest-url- is a prefix of vftest-url-crash-',
    ]));
    expect(registryProblems({ a: 3, b: 3 })).toEqual(['suites a and b share the number 3']);
    expect(registryProblems({ a: 0 })).toEqual(['suite a: number 0 not in 1..255']);
  });

  it('gives each suite its own names, subnets and MACs', () => {
    const ids = Object.keys(SUITES) as SuiteId[];
    const all = ids.map((id) => suiteNames(id));
    const w = suiteNames('watch');
    expect(w.name('vm')).toBe('vftest-watch-vm');
    expect(w.base).toBe('vftest-watch');
    expect(w.poolPath()).toBe('/var/lib/virtform-test/vftest-watch-pool');
    expect(w.cidr()).toBe(`10.200.${SUITES.watch}.0/24`);
    expect(w.ip(11, 1)).toBe(`10.201.${SUITES.watch}.11`);
    expect(w.mac(17, 1)).toBe(`52:54:00:${SUITES.watch.toString(16)}:01:11`);
    expect(() => w.cidr(10)).toThrow(/0\.\.9/);
    for (const a of all) {
      for (const b of all) {
        if (a === b) continue;
        expect(b.name('x').startsWith(a.prefix), `${b.name('x')} starts with ${a.prefix}`).toBe(false);
        expect(a.cidr(0)).not.toBe(b.cidr(0));
        expect(a.mac(1)).not.toBe(b.mac(1));
      }
    }
  });

  it('the suites on the real libvirtd take their names from the allocator', () => {
    const files: string[] = [];
    const walk = (dir: string): void => {
      for (const e of readdirSync(dir, { withFileTypes: true })) {
        const p = join(dir, e.name);
        if (e.isDirectory()) walk(p);
        else if (p.endsWith('.ts')) files.push(p);
      }
    };
    for (const d of ['test/integration', 'test/guest', 'test/faults']) walk(join(ROOT, d));
    // A quoted name that starts `vftest-` outside a comment (names of objects that must not exist
    // are no objects of a suite).
    const literal = /['"`]vftest-(?!\$\{)(?!no-such|nonexistent|nope|missing|marker)[a-z0-9][\w-]*/g;
    const comment = /^\s*(\*|\/\*|\/\/)/;
    const offenders = files.flatMap((f) => readFileSync(f, 'utf8').split('\n').flatMap((line, i) =>
      comment.test(line) ? [] : [...line.matchAll(literal)].map((m) => `${relative(ROOT, f)}:${i + 1}: ${m[0]}`)));
    expect(offenders).toEqual([]);
  });
});
