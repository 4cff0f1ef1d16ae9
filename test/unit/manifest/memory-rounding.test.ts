/**
 * virtform issue #12: `memory: 1GB` was rejected ("not a whole number of KiB") although the README
 * lists GB. Memory sizes in powers of 1000 (or any byte count) are rounded UP to a whole KiB; the
 * VM definition gets the rounded KiB count. Sizes that are whole KiB are left exactly as written.
 */
import { rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { formatManifestError, loadManifests, roundUpToKiB } from '../../../src/manifest/index.js';
import { buildDesired } from '../../../src/reconcile/desired.js';
import { makeTempDir } from '../../support/temp-dirs.js';

const work = makeTempDir('vftest-mem-');
afterAll(() => rmSync(work, { recursive: true, force: true }));

let n = 0;
async function vmWith(memory: string) {
  const dir = join(work, `m${n++}`);
  const { mkdirSync } = await import('node:fs');
  mkdirSync(dir);
  writeFileSync(join(dir, 'vm.yaml'),
    `apiVersion: virtform.dev/v1\nkind: VirtualMachine\nmetadata: {name: vm}\nspec: {vcpus: 1, memory: ${memory}}\n`);
  return loadManifests(dir);
}

describe('memory sizes round up to a whole KiB', () => {
  it.each<[string, number, number]>([
    // [written, bytes in the manifest after loading, KiB in the domain]
    ['1GB', 1_000_000_512, 976_563],
    ['"1.5 GB"', 1_500_000_256, 1_464_844],
    ['512MB', Number.NaN, 500_000], // 512e6 bytes is a whole 500000KiB
    ['100000001', 100_000_768, 97_657],
    ['1GiB', Number.NaN, 1_048_576],
    ['"512MiB"', Number.NaN, 524_288],
  ])('memory: %s', async (memory, bytes, kib) => {
    const r = await vmWith(memory);
    if (!r.ok) throw new Error(r.errors.map(formatManifestError).join('\n'));
    const vm = r.desired.vms[0]!;
    if (Number.isNaN(bytes)) expect(vm.spec.memory).toBe(memory.replaceAll('"', '')); // whole KiB: as written
    else expect(vm.spec.memory).toBe(bytes);
    const config = buildDesired(r.desired).resources.find((x) => x.kind === 'VirtualMachine')!.config as { memoryKiB: number };
    expect(config.memoryKiB).toBe(kib);
  });

  it('limits apply to the rounded size', async () => {
    const low = await vmWith('16MB');
    expect(low.ok).toBe(false);
    if (!low.ok) expect(low.errors[0]!.message).toBe('memory 16000000 bytes is below the 16MiB minimum');
    const high = await vmWith('4398046511105');
    if (!high.ok) expect(high.errors[0]!.message).toBe('memory 4398046512128 bytes exceeds the 4TiB limit');
    expect(high.ok).toBe(false);
  });

  it('roundUpToKiB', () => {
    expect([0, 1, 1023, 1024, 1025].map(roundUpToKiB)).toEqual([0, 1024, 1024, 1024, 2048]);
  });
});
