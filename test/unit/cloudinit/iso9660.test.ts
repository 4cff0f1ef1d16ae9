import { createHash, randomBytes } from 'node:crypto';
import { beforeAll, describe, expect, it } from 'vitest';
import { buildIso9660, IsoError, primaryName, SECTOR } from '../../../src/cloudinit/iso9660.js';
import { readIso, requireTools } from './iso-reader.js';

beforeAll(requireTools);

describe('ISO 9660 + Joliet writer, read back with xorriso, isoinfo and blkid', () => {
  it('lower-case names, label and contents are exactly what was written', () => {
    const files = [
      { name: 'user-data', data: '#cloud-config\n#vf-marker: hello\n' },
      { name: 'meta-data', data: 'instance-id: i-1\nlocal-hostname: h1\n' },
      { name: 'network-config', data: 'version: 2\n' },
    ];
    const v = readIso(buildIso9660(files, { volumeId: 'cidata' }));
    expect(v.volumeId).toBe('cidata');
    expect(v.blkid).toEqual({ label: 'cidata', type: 'iso9660' });
    expect(v.descriptor).toContain('Joliet with UCS level 3 found');
    expect(v.names).toEqual(['meta-data', 'network-config', 'user-data']);
    expect(v.jolietListing).toEqual(['meta-data;1', 'network-config;1', 'user-data;1']);
    expect(v.primaryListing).toEqual(['META_DATA.;1', 'NETWORK_CONFIG.;1', 'USER_DATA.;1']);
    for (const f of files) expect(v.contents.get(f.name)?.toString('utf8')).toBe(f.data);
  });

  it('binary data over several sectors, an empty file, a file of exactly one sector, and UTF-8 text', () => {
    const big = randomBytes(5 * SECTOR + 123);
    const exact = randomBytes(SECTOR);
    const text = 'grüße ✓ — 日本\n';
    const v = readIso(
      buildIso9660(
        [
          { name: 'big.bin', data: big },
          { name: 'empty', data: '' },
          { name: 'exact', data: exact },
          { name: 'Text.TXT', data: text },
        ],
        { volumeId: 'CIDATA' },
      ),
    );
    expect(v.volumeId).toBe('CIDATA');
    expect(v.names).toEqual(['Text.TXT', 'big.bin', 'empty', 'exact']);
    expect(v.contents.get('big.bin')!.equals(big)).toBe(true);
    expect(v.contents.get('exact')!.equals(exact)).toBe(true);
    expect(v.contents.get('empty')!.length).toBe(0);
    expect(v.contents.get('Text.TXT')!.toString('utf8')).toBe(text);
  });

  it('a root directory over several sectors (120 files with long names) reads back whole', () => {
    const files = Array.from({ length: 120 }, (_, i) => ({
      name: `file-number-${String(i).padStart(3, '0')}-with-a-rather-long-name.cfg`,
      data: `content ${i}\n`,
    }));
    const img = buildIso9660(files, { volumeId: 'many' });
    const v = readIso(img);
    expect(v.names).toEqual(files.map((f) => f.name).sort());
    expect(v.jolietListing).toHaveLength(120);
    expect(v.primaryListing).toHaveLength(120);
    for (const f of files) expect(v.contents.get(f.name)?.toString()).toBe(f.data);
  });

  it('same input, same bytes; a different date or content changes them', () => {
    const files = [{ name: 'a', data: 'x' }];
    const sha = (b: Uint8Array): string => createHash('sha256').update(b).digest('hex');
    const a = buildIso9660(files, { volumeId: 'cidata' });
    expect(sha(buildIso9660(files, { volumeId: 'cidata' }))).toBe(sha(a));
    expect(sha(buildIso9660([{ name: 'a', data: 'y' }], { volumeId: 'cidata' }))).not.toBe(sha(a));
    expect(sha(buildIso9660(files, { volumeId: 'cidata', date: new Date('2026-01-02T03:04:05Z') }))).not.toBe(sha(a));
    expect(a.length % SECTOR).toBe(0);
  });

  it('the given date is what readers report', () => {
    const img = buildIso9660([{ name: 'a', data: 'x' }], { volumeId: 'cidata', date: new Date('2026-01-02T03:04:05Z') });
    const v = readIso(img);
    expect(v.pvdInfo).toMatch(/^Creation Time: 2026010203040500$/m);
    expect(v.pvdInfo).toMatch(/^Modif\. Time\s*: 2026010203040500$/m);
  });

  it('primary (ISO 9660 level 2) names are upper-case d-characters', () => {
    expect(primaryName('user-data')).toBe('USER_DATA.;1');
    expect(primaryName('Text.TXT')).toBe('TEXT.TXT;1');
    expect(primaryName('archive.tar.gz')).toBe('ARCHIVE_TAR.GZ;1');
    expect(primaryName('x'.repeat(40))).toBe(`${'X'.repeat(30)}.;1`);
  });

  it('bad names, labels and dates are refused with a clear error', () => {
    const bad = (files: { name: string; data: string }[], volumeId = 'cidata', date?: Date): string => {
      try {
        buildIso9660(files, { volumeId, ...(date ? { date } : {}) });
      } catch (e) {
        expect(e).toBeInstanceOf(IsoError);
        return (e as Error).message;
      }
      throw new Error('no error');
    };
    expect(bad([{ name: 'a/b', data: '' }])).toMatch(/not allowed/);
    expect(bad([{ name: 'a;1', data: '' }])).toMatch(/not allowed/);
    expect(bad([{ name: 'nl\n', data: '' }])).toMatch(/control characters/);
    expect(bad([{ name: '', data: '' }])).toMatch(/empty/);
    expect(bad([{ name: '..', data: '' }])).toMatch(/reserved/);
    expect(bad([{ name: 'smile-\u{1F600}', data: '' }])).toMatch(/outside the BMP/);
    expect(bad([{ name: 'n'.repeat(63), data: '' }])).toMatch(/over 62/);
    expect(bad([{ name: 'a-b', data: '' }, { name: 'A_B', data: '' }])).toMatch(/same ISO 9660 name A_B\.;1/);
    expect(bad([], '')).toMatch(/volume id/);
    expect(bad([], 'has space')).toMatch(/volume id/);
    expect(bad([], 'x'.repeat(17))).toMatch(/volume id/);
    expect(bad([], 'ok', new Date('nope'))).toMatch(/not a valid date/);
  });
});
