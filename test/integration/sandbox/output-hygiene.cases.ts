/**
 * Output hygiene (issue 19, finding 12) through the CLI: a file name with control characters is
 * printed escaped (it could recolour or retitle the terminal), cloud-init secrets are never echoed
 * in errors (an invalid network-config's text, a user-data or meta-data value of the wrong type),
 * and inline `userData` follows the text rules of `userDataFile` (a NUL is refused, file:line:col).
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { rmSync } from 'node:fs';
import { join } from 'node:path';
import { writeManifests } from '../../support/manifests.js';
import { ensureBuilt, runCli } from '../../support/real-host.js';
import { suiteNames } from '../../support/names.js';

const N = suiteNames('sbxout');

const SECRET = 'hunter2-token-9c1f';
let work: string;
beforeAll(() => {
  ensureBuilt();
  work = N.tempDir();
});
afterAll(() => rmSync(work, { recursive: true, force: true }));

const vm = (name: string, cloudInit: string): string => `apiVersion: virtform.dev/v1
kind: VirtualMachine
metadata: {name: ${name}}
spec:
  vcpus: 1
  memory: 64MiB
  cloudInit:
    pool: p
${cloudInit}---
`;
const POOL = `apiVersion: virtform.dev/v1\nkind: StoragePool\nmetadata: {name: p}\nspec: {path: ${N.poolPath('hyg')}}\n`;

describe('output hygiene', () => {
  it('control characters in a file name are escaped; secrets are not echoed; inline userData with a NUL is refused with file:line:col', async () => {
    const dir = writeManifests(join(work, 'm'), {
      'title\u001b]0;pwned\u0007\u009b31m.yaml': 'apiVersion: virtform.dev/v1\nkind: Network\nmetadata: {name: n}\nspec: {mode: sideways}\n',
      'vms.yaml': POOL + '---\n'
        + vm('badnet', `    networkConfig: "version: 2\\nethernets: {eth0: {password: ${SECRET}\\n"\n`)
        + vm('nul', '    userData: "#cloud-config\\0 rest"\n')
        + vm('meta', `    metaData: {instance-id: [${SECRET}]}\n`)
        + vm('udtype', `    userData: {token: ${SECRET}}\n`),
    });
    const r = await runCli(['validate', dir]);
    expect(r.code, r.stdout + r.stderr).toBe(2);
    const out = r.stdout + r.stderr;
    expect(out).not.toMatch(/[\u0000-\u0008\u000b-\u001f\u007f-\u009f]/); // no control character reaches the terminal
    expect(out).toContain('title\\u001b]0;pwned\\u0007\\u009b31m.yaml:4:');
    expect(out).not.toContain(SECRET);
    expect(out).toMatch(/vms\.yaml:\d+:\d+: VirtualMachine\/badnet: spec\.cloudInit\.networkConfig: not valid YAML at line \d+, column \d+ of the text \(\w+; the text is not shown\)/);
    expect(out).toMatch(/vms\.yaml:\d+:\d+: VirtualMachine\/nul: spec\.cloudInit\.userData: user-data contains a NUL character/);
    expect(out).toMatch(/VirtualMachine\/udtype: spec\.cloudInit\.userData: must be a string, got mapping/);
  }, 60_000);
});
