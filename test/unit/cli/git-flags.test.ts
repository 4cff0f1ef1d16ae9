/**
 * `--git` on reconcile/status/watch: the flag rules (exit 2), and credentials in the URL never
 * reaching the output (the fetch fails before any libvirt connection). The end-to-end CLI test is
 * test/integration/cli/git-cli.test.ts (it needs libvirtd's test driver).
 */
import { describe, expect, it } from 'vitest';
import { rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { gitInput } from '../../../src/cli/git.js';
import { runReconcile } from '../../../src/cli/commands/reconcile.js';
import { runWatch } from '../../../src/cli/commands/watch.js';
import { tempDir } from '../../support/manifests.js';
import { capture } from '../../support/cli.js';

const base = { uri: 'test:///default', concurrency: 1, maxAttempts: 1, retryDelay: 0, shutdownTimeout: 0 };

describe('--git flag rules', () => {
  it.each([
    [['m', {}], 'none'],
    [[undefined, {}], 'give the manifest folder DIR, or --git URL'],
    [['m', { git: 'file:///r' }], 'give either DIR (m) or --git URL, not both'],
    [['m', { branch: 'main' }], '--branch needs --git URL'],
    [[undefined, { git: 'file:///r', branch: 'a', tag: 'b' }], '--branch and --tag exclude each other'],
    [[undefined, { git: 'file:///r', verifyCommits: true }], '--verify-commits needs --gpg-keyring FILE or --ssh-allowed-signers FILE'],
    [[undefined, { git: 'file:///r', sshAllowedSigners: '/etc/hostname' }], 'take effect with --verify-commits'],
    [[undefined, { git: 'file:///r', gitTokenFile: '/nonexistent/t' }], '--git-token-file /nonexistent/t: does not exist'],
    [[undefined, { git: 'https://h.example/r', gitSshKey: '/etc/hostname' }], '--git-ssh-key and --git-known-hosts are for ssh URLs'],
    [[undefined, { git: 'git@h.example:r', gitTokenFile: '/etc/hostname' }], '--git-token-file is for https URLs'],
    [[undefined, { git: 'http://h.example/r', gitTokenFile: '/etc/hostname' }], 'would send the token unencrypted'],
    [[undefined, { git: 'file:///r', path: '../x' }], '--path: "../x" must not contain ".." segments'],
  ] as const)('%j', ([dir, flags], want) => {
    const r = gitInput(dir, flags, { dirRequired: true });
    if (want === 'none') expect(r).toEqual({ none: true });
    else expect('errors' in r && r.errors.join('\n')).toContain(want);
  });

  it('watch: --git with DIR is exit 2', async () => {
    const r = await capture(() => runWatch('m', { ...base, git: 'file:///r', resync: 300, debounce: 500, listen: false, logLevel: 'error' }));
    expect(r.code).toBe(2);
    expect(r.stderr).toContain('not both');
  });
});

describe('reconcile --git: credentials', () => {
  it('credentials in the URL are never printed', async () => {
    const work = tempDir('vftest-gitcli-');
    try {
      const db = join(work, 'state.db');
      writeFileSync(join(work, 'x'), '');
      const r = await capture(() => runReconcile(undefined, { ...base, db, git: 'https://deploy:hunter2-secret@127.0.0.1:1/none.git', json: true }));
      expect(r.code).toBe(1);
      expect(r.stdout + r.stderr).not.toContain('hunter2-secret');
      expect(r.stderr).toContain('https://***@127.0.0.1:1/none.git');
    } finally {
      rmSync(work, { recursive: true, force: true });
    }
  });
});
