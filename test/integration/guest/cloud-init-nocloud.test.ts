/**
 * cloud-init itself reads the seed: Debian's cloud-init package (unpacked, not installed, by
 * scripts/fetch-cloud-init.sh) runs its NoCloud datasource over an image built by
 * src/cloudinit/seed.ts. blkid finds the image by its label as cloud-init asks for it
 * (LABEL=CIDATA / LABEL=cidata, TYPE=iso9660); the files are read by cloud-init's own code; only
 * the mount is replaced by an xorriso extraction (see nocloud-read.py). No libvirt objects.
 */
import { execFileSync } from 'node:child_process';
import { rmSync, writeFileSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { buildNoCloudSeed, type SeedInput } from '../../../src/cloudinit/seed.js';
import { suiteNames } from '../../support/names.js';

const here = dirname(fileURLToPath(import.meta.url));
const root = resolve(here, '../../..');
let site: string;
let tmp: string;

beforeAll(() => {
  site = execFileSync('bash', [resolve(root, 'scripts/fetch-cloud-init.sh')], {
    encoding: 'utf8',
    stdio: ['ignore', 'pipe', 'inherit'],
    timeout: 280_000,
  }).trim();
  tmp = suiteNames('nocloud').tempDir();
}, 300_000);

afterAll(() => {
  if (tmp) rmSync(tmp, { recursive: true, force: true });
});

interface Found {
  found: boolean;
  instance_id?: string;
  hostname?: string;
  public_keys?: string[];
  userdata_raw?: string;
  network_config?: unknown;
  metadata?: Record<string, unknown>;
}

function cloudInitReads(input: SeedInput | Uint8Array): Found {
  const img = join(tmp, `seed-${Math.random().toString(36).slice(2)}.iso`);
  writeFileSync(img, input instanceof Uint8Array ? input : buildNoCloudSeed(input).iso);
  const out = execFileSync('/usr/bin/python3', [join(here, 'nocloud-read.py'), img], {
    encoding: 'utf8',
    env: { ...process.env, PYTHONPATH: site },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  return JSON.parse(out.trim().split('\n').pop()!) as Found;
}

describe("cloud-init's NoCloud datasource reads the seed", () => {
  it('user-data, meta-data (instance-id, hostname, public-keys) and network-config v2', () => {
    const userData = '#cloud-config\npackages: [htop]\nruncmd:\n  - [echo, hello]\n';
    const keys = ['ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIJ1 alice@a', 'ssh-rsa AAAAB3Nza bob@b'];
    const net = { version: 2, ethernets: { eth0: { dhcp4: true, match: { macaddress: '52:54:00:12:34:56' }, 'set-name': 'eth0' } } };
    const r = cloudInitReads({ vmName: 'web-1', userData, metaData: { 'instance-id': 'iid-web-1-a' }, sshAuthorizedKeys: keys, networkConfig: net });
    expect(r.found).toBe(true);
    expect(r.instance_id).toBe('iid-web-1-a');
    expect(r.hostname).toBe('web-1');
    expect(r.public_keys).toEqual(keys);
    expect(r.userdata_raw).toBe(userData);
    expect(r.network_config).toEqual(net);
  });

  it('defaults only: instance-id and hostname are the VM name, empty user-data', () => {
    const r = cloudInitReads({ vmName: 'db' });
    expect(r).toMatchObject({ found: true, instance_id: 'db', hostname: 'db', userdata_raw: '', public_keys: [] });
  });

  it('network-config v1 text as written', () => {
    const v1 = 'version: 1\nconfig:\n  - type: physical\n    name: eth0\n    mac_address: "52:54:00:aa:bb:cc"\n    subnets:\n      - type: dhcp\n';
    const r = cloudInitReads({ vmName: 'n1', networkConfig: v1 });
    expect(r.network_config).toEqual({
      version: 1,
      config: [{ type: 'physical', name: 'eth0', mac_address: '52:54:00:aa:bb:cc', subnets: [{ type: 'dhcp' }] }],
    });
  });
});
