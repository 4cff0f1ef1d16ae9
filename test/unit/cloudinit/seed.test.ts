import { execFileSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { beforeAll, describe, expect, it } from 'vitest';
import { parse } from 'yaml';
import { buildNoCloudSeed, SeedError, seedFiles } from '../../../src/cloudinit/seed.js';
import { readIso, requireTools } from './iso-reader.js';

beforeAll(requireTools);

/** Parses YAML with PyYAML, the YAML 1.1 parser cloud-init reads meta-data and network-config with. */
function pyyaml(text: string): unknown {
  try {
    return JSON.parse(
      execFileSync('/usr/bin/python3', ['-c', 'import sys, json, yaml; print(json.dumps(yaml.safe_load(sys.stdin.read())))'], {
        input: text,
        encoding: 'utf8',
        stdio: ['pipe', 'pipe', 'pipe'],
      }),
    );
  } catch (e) {
    throw new Error(`PyYAML (Debian python3-yaml, /usr/bin/python3) is needed for this test: ${(e as Error).message}`);
  }
}

const KEY = 'ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIFakeFakeFakeFakeFakeFakeFakeFakeFakeFake user@host';

describe('NoCloud seed', () => {
  it('minimal: empty user-data, meta-data defaults from the VM name; label cidata', () => {
    const s = buildNoCloudSeed({ vmName: 'web-1' });
    const v = readIso(s.iso);
    expect(v.blkid).toEqual({ label: 'cidata', type: 'iso9660' });
    expect(v.names).toEqual(['meta-data', 'user-data']);
    expect(v.contents.get('user-data')!.length).toBe(0);
    expect(v.contents.get('meta-data')!.toString()).toBe('instance-id: web-1\nlocal-hostname: web-1\n');
    expect(s.sha256).toBe(createHash('sha256').update(s.iso).digest('hex'));
  });

  it('all inputs: user-data verbatim, metaData over the defaults, public-keys, network-config', () => {
    const userData = '#cloud-config\n#vf-marker: hi there\nruncmd:\n  - [sh, -c, "echo hi"]\n';
    const s = buildNoCloudSeed({
      vmName: 'db',
      userData,
      metaData: { 'local-hostname': 'db-primary', zone: 'a' },
      sshAuthorizedKeys: [KEY, ` ${KEY}2 `],
      networkConfig: { version: 2, ethernets: { eth0: { dhcp4: true } } },
    });
    const v = readIso(s.iso);
    expect(v.names).toEqual(['meta-data', 'network-config', 'user-data']);
    expect(v.contents.get('user-data')!.toString()).toBe(userData);
    expect(parse(v.contents.get('meta-data')!.toString())).toEqual({
      'instance-id': 'db',
      'local-hostname': 'db-primary',
      zone: 'a',
      'public-keys': [KEY, `${KEY}2`],
    });
    expect(parse(v.contents.get('network-config')!.toString())).toEqual({ version: 2, ethernets: { eth0: { dhcp4: true } } });
    // What is in the image is exactly what seedFiles reports.
    for (const f of s.files) expect(v.contents.get(f.name)!.toString()).toBe(f.text);
  });

  it('strings that YAML 1.1 (PyYAML, as cloud-init reads) would take for numbers or booleans stay strings', () => {
    const tricky = { mac: '52:54:00:12:34:56', yes: 'yes', on: 'on', no: 'no', y: 'y', time: '12:30', octal: '0755', under: '1_000' };
    const files = seedFiles({
      vmName: 'on',
      metaData: { 'instance-id': '1:2:3', ...tricky },
      networkConfig: { version: 2, ethernets: { eth0: { match: { macaddress: '52:54:00:12:34:56' }, dhcp4: true } } },
    });
    expect(pyyaml(files[1]!.text)).toEqual({ 'instance-id': '1:2:3', 'local-hostname': 'on', ...tricky });
    expect(pyyaml(files[2]!.text)).toEqual({ version: 2, ethernets: { eth0: { match: { macaddress: '52:54:00:12:34:56' }, dhcp4: true } } });
  });

  it('network-config text is kept as written (v1 and v2, also under network:)', () => {
    const v1 = 'version: 1\nconfig:\n  - type: physical\n    name: eth0\n    subnets:\n      - type: dhcp\n';
    expect(seedFiles({ vmName: 'a', networkConfig: v1 })[2]).toEqual({ name: 'network-config', text: v1 });
    const nested = '# comment kept\nnetwork:\n  version: 2\n  ethernets: {}\n';
    expect(seedFiles({ vmName: 'a', networkConfig: nested })[2]!.text).toBe(nested);
  });

  it('deterministic: the same input in another key order gives the same bytes; a change gives another digest', () => {
    const a = buildNoCloudSeed({ vmName: 'x', metaData: { b: 1, a: 2 }, networkConfig: { version: 2, ethernets: { e: {} } } });
    const b = buildNoCloudSeed({ vmName: 'x', metaData: { a: 2, b: 1 }, networkConfig: { ethernets: { e: {} }, version: 2 } });
    expect(Buffer.from(a.iso).equals(Buffer.from(b.iso))).toBe(true);
    expect(a.sha256).toBe(b.sha256);
    expect(buildNoCloudSeed({ vmName: 'x', metaData: { b: 1, a: 3 } }).sha256).not.toBe(a.sha256);
    expect(buildNoCloudSeed({ vmName: 'x', userData: ' ' }).sha256).not.toBe(buildNoCloudSeed({ vmName: 'x' }).sha256);
  });

  it('bad input is refused naming the field', () => {
    const err = (f: () => unknown): SeedError => {
      try {
        f();
      } catch (e) {
        expect(e).toBeInstanceOf(SeedError);
        return e as SeedError;
      }
      throw new Error('no error');
    };
    expect(err(() => buildNoCloudSeed({ vmName: '' })).field).toBe('vmName');
    expect(err(() => buildNoCloudSeed({ vmName: 'a', metaData: { 'instance-id': '' } })).field).toBe('metaData.instance-id');
    expect(err(() => buildNoCloudSeed({ vmName: 'a', metaData: { 'local-hostname': 7 } })).field).toBe('metaData.local-hostname');
    expect(err(() => buildNoCloudSeed({ vmName: 'a', metaData: [] as unknown as Record<string, unknown> })).field).toBe('metaData');
    expect(err(() => buildNoCloudSeed({ vmName: 'a', sshAuthorizedKeys: ['ok', 'two\nlines'] })).field).toBe('sshAuthorizedKeys[1]');
    expect(err(() => buildNoCloudSeed({ vmName: 'a', sshAuthorizedKeys: [KEY], metaData: { 'public-keys': [KEY] } })).message).toMatch(/one place/);
    expect(err(() => buildNoCloudSeed({ vmName: 'a', networkConfig: { ethernets: {} } })).message).toMatch(/version: 1/);
    expect(err(() => buildNoCloudSeed({ vmName: 'a', networkConfig: 'version: 3\n' })).message).toMatch(/version: 1/);
    expect(err(() => buildNoCloudSeed({ vmName: 'a', networkConfig: '- a\n- b\n' })).message).toMatch(/mapping/);
    expect(err(() => buildNoCloudSeed({ vmName: 'a', networkConfig: 'a: [\n' })).message).toMatch(/not valid YAML/);
  });
});
