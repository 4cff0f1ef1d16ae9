/**
 * "This machine" for the writer lease (src/state/lease.ts): a holder's pid is tested for life only
 * by a process with the same host name AND machine identity (kernel boot id, pid namespace), so a
 * container or a cloned VM with the same host name never takes a live holder's lease over early.
 * The takeover bound `watch --help` prints is lease duration + retry period.
 */
import { spawn } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import {
  DEFAULT_LEASE_TIMING, LeaseHeldError, isPidAlive, machineIdentity, openStateStore, readLease, sameMachine, takeoverBoundMs, takeoverBoundText,
  type StateStore,
} from '../../../src/state/index.js';
import { applicationName } from '../../../src/state/postgres.js';
import { buildProgram } from '../../../src/cli/program.js';
import { stateBackends } from '../../support/backends.js';

async function deadPid(): Promise<number> {
  const p = spawn(process.execPath, ['-e', '0'], { stdio: 'ignore' });
  const pid = p.pid!;
  await new Promise((res) => p.on('exit', res));
  expect(isPidAlive(pid)).toBe(false);
  return pid;
}

describe('machine identity', () => {
  it('is the kernel boot id and this pid namespace', () => {
    const boot = readFileSync('/proc/sys/kernel/random/boot_id', 'utf8').trim();
    expect(machineIdentity()).toMatch(new RegExp(`^boot:${boot} pidns:\\d+$`));
  });

  it('same machine: same host name and the same identity; an unknown identity never is', () => {
    const me = { hostname: 'h', machine: 'boot:1 pidns:2' };
    expect(sameMachine({ hostname: 'h', machine: 'boot:1 pidns:2' }, me)).toBe(true);
    expect(sameMachine({ hostname: 'h', machine: 'boot:1 pidns:3' }, me)).toBe(false); // a container on this host
    expect(sameMachine({ hostname: 'h', machine: 'boot:9 pidns:2' }, me)).toBe(false); // a clone with the same name
    expect(sameMachine({ hostname: 'g', machine: 'boot:1 pidns:2' }, me)).toBe(false);
    expect(sameMachine({ hostname: 'h', machine: null }, me)).toBe(false); // a row of an older virtform
    expect(sameMachine({ hostname: 'h', machine: null }, { hostname: 'h', machine: null })).toBe(false);
  });
});

describe('the takeover bound', () => {
  it('is lease duration + retry period, and watch --help prints it with the defaults', () => {
    expect(takeoverBoundMs(DEFAULT_LEASE_TIMING)).toBe(17_000);
    expect(takeoverBoundMs({ leaseMs: 4000, renewDeadlineMs: 3000, retryMs: 500 })).toBe(4500);
    expect(takeoverBoundText(DEFAULT_LEASE_TIMING)).toBe('17 s (--lease-duration 15 + --retry-period 2)');
    const watch = buildProgram().commands.find((c) => c.name() === 'watch')!;
    let help = '';
    watch.configureOutput({ writeOut: (s) => (help += s) });
    watch.outputHelp();
    expect(help.replace(/\s+/g, ' ')).toContain(`a standby takes over within --lease-duration + --retry-period seconds (${takeoverBoundMs(DEFAULT_LEASE_TIMING) / 1000} s with the defaults)`);
    // The flags' defaults are the lease's.
    const opt = (name: string): unknown => watch.options.find((o) => o.long === name)!.defaultValue;
    expect([opt('--lease-duration'), opt('--renew-deadline'), opt('--retry-period')].map(Number))
      .toEqual([DEFAULT_LEASE_TIMING.leaseMs / 1000, DEFAULT_LEASE_TIMING.renewDeadlineMs / 1000, DEFAULT_LEASE_TIMING.retryMs / 1000]);
  });
});

describe('PostgreSQL session name', () => {
  it('PGAPPNAME, else virtform HOST/PID, at most 63 bytes', () => {
    expect(applicationName({ PGAPPNAME: 'ctl-a' })).toBe('ctl-a');
    expect(applicationName({})).toMatch(new RegExp(`^virtform .+/${process.pid}$`));
    expect(applicationName({ PGAPPNAME: 'x'.repeat(100) })).toHaveLength(63);
  });
});

describe.each(stateBackends('leasemachine'))('dead holder takeover on $name', (backend) => {
  let store: StateStore;
  beforeEach(async () => {
    store = await openStateStore(await backend.fresh());
  });
  afterEach(async () => {
    await store.close();
  });

  it('records the machine identity in the row', async () => {
    const lease = await store.acquireLease({ command: 'a' });
    expect(lease.machine).toBe(machineIdentity());
    expect((await readLease(store.leaseDeps()))!.machine).toBe(machineIdentity());
    await lease.release();
  });

  it('a dead pid of this host name but another machine identity (a container, a clone) is not taken over before expiry', async () => {
    const dead = await deadPid();
    await store.acquireLease({ command: 'elsewhere', pid: dead, machine: 'boot:other pidns:1' });
    const err = await store.acquireLease({ command: 'here' }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(LeaseHeldError);
    expect(err).toMatchObject({ holderPid: dead });
  });

  it('a dead pid of an older virtform (no identity in the row) is not taken over before expiry', async () => {
    const dead = await deadPid();
    await store.acquireLease({ command: 'old', pid: dead, machine: null });
    expect((await readLease(store.leaseDeps()))!.machine).toBeNull();
    await expect(store.acquireLease({ command: 'here' })).rejects.toBeInstanceOf(LeaseHeldError);
  });

  it('a dead pid of this machine (same identity) is taken over at once', async () => {
    const dead = await deadPid();
    const stale = await store.acquireLease({ command: 'crashed', pid: dead });
    const lease = await store.acquireLease({ command: 'here' });
    expect(lease.epoch).toBe(stale.epoch + 1);
    await lease.release();
  });
});
