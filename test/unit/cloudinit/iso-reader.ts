/**
 * Reads ISO images with real readers (Debian packages xorriso and genisoimage's isoinfo, and
 * util-linux's blkid, which is what cloud-init uses to find the seed by its label).
 */
import { execFileSync } from 'node:child_process';
import { readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { makeTempDir } from '../../support/temp-dirs.js';

export function requireTools(): void {
  for (const [tool, pkg] of [
    ['xorriso', 'xorriso'],
    ['isoinfo', 'genisoimage'],
    ['blkid', 'util-linux'],
  ]) {
    try {
      execFileSync('sh', ['-c', `command -v ${tool}`], { stdio: 'ignore' });
    } catch {
      throw new Error(`${tool} is needed to check ISO images: apt-get install ${pkg} (scripts/setup-host.sh installs it)`);
    }
  }
}

export interface IsoView {
  /** Volume label from the primary volume descriptor (xorriso -pvd_info). */
  volumeId: string;
  /** Names as xorriso sees them (Joliet when present), sorted. */
  names: string[];
  /** File contents extracted by xorriso, by name. */
  contents: Map<string, Buffer>;
  /** isoinfo -J -l: Joliet names (with version), in directory order. */
  jolietListing: string[];
  /** isoinfo -l: primary ISO 9660 names, in directory order. */
  primaryListing: string[];
  /** xorriso -pvd_info output. */
  pvdInfo: string;
  /** isoinfo -d output. */
  descriptor: string;
  /** blkid's LABEL and TYPE. */
  blkid: { label: string; type: string };
}

export function readIso(img: Uint8Array): IsoView {
  const dir = makeTempDir('vf-iso-');
  try {
    const path = join(dir, 'image.iso');
    writeFileSync(path, img);
    const run = (cmd: string, args: string[]): string => execFileSync(cmd, args, { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] });
    const pvd = run('xorriso', ['-indev', path, '-pvd_info']);
    const volumeId = /^Volume Id\s*:\s?(.*)$/m.exec(pvd)?.[1] ?? '';
    const names = run('xorriso', ['-indev', path, '-find', '/', '-type', 'f'])
      .split('\n')
      .filter((l) => l.startsWith("'/"))
      .map((l) => l.slice(2, -1))
      .sort();
    const out = join(dir, 'x');
    run('xorriso', ['-osirrox', 'on', '-indev', path, '-extract', '/', out]);
    const contents = new Map<string, Buffer>();
    for (const n of readdirSync(out)) contents.set(n, readFileSync(join(out, n)));
    const listing = (args: string[]): string[] =>
      run('isoinfo', [...args, '-l', '-i', path])
        .split('\n')
        .map((l) => /\]\s+(.*?)\s*$/.exec(l)?.[1])
        .filter((n): n is string => n !== undefined && n !== '.' && n !== '..');
    const blk = run('blkid', ['-p', '-o', 'export', path]);
    return {
      volumeId,
      names,
      contents,
      jolietListing: listing(['-J']),
      primaryListing: listing([]),
      pvdInfo: pvd,
      descriptor: run('isoinfo', ['-d', '-i', path]),
      blkid: { label: /^LABEL=(.*)$/m.exec(blk)?.[1] ?? '', type: /^TYPE=(.*)$/m.exec(blk)?.[1] ?? '' },
    };
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}
