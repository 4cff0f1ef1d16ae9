/**
 * A killed daemon fails pending calls promptly with a clear error, and a new connection works
 * once the daemon is back.
 *
 * This kills the shared libvirtd (SIGKILL) and restarts it with `libvirtd -d`, so it lives in its
 * own file and keeps the outage short (integration files run one at a time). The daemon is first
 * frozen with SIGSTOP so the call under test is certainly in flight when the kill lands.
 */
import { afterAll, describe, expect, it } from 'vitest';
import { ConnectionError, LibvirtClient } from '../../../src/libvirt/index.js';
import { signalLibvirtd, startLibvirtd } from '../../support/libvirtd.js';
import { suiteNames } from '../../support/names.js';

const N = suiteNames('restart');
const P = N.base;

const URI = 'qemu:///system';


async function connectWhenUp(timeoutMs: number): Promise<{ client: LibvirtClient; waitedMs: number }> {
  const t0 = Date.now();
  let last: unknown;
  while (Date.now() - t0 < timeoutMs) {
    try {
      const client = await LibvirtClient.connect(URI, { connectTimeoutMs: 2000, timeoutMs: 30_000 });
      return { client, waitedMs: Date.now() - t0 };
    } catch (err) {
      last = err;
      await new Promise((r) => setTimeout(r, 200));
    }
  }
  throw new Error(`libvirtd did not come back within ${timeoutMs} ms: ${(last as Error)?.message}`);
}

afterAll(async () => {
  // Whatever happened above, leave a running, answering daemon for the next suites.
  signalLibvirtd('SIGCONT');
  await startLibvirtd();
  const { client } = await connectWhenUp(60_000);
  await client.close();
});

describe('daemon restart', () => {
  it('pending calls fail promptly when libvirtd is killed; a new connection works after restart', async () => {
    const c = await LibvirtClient.connect(URI, { keepaliveIntervalMs: 0 });
    expect(await c.connectGetVersion()).toBeGreaterThan(0);
    const disconnected = new Promise<ConnectionError>((r) => c.once('disconnect', r));

    // Freeze the daemon so these calls cannot be answered, then kill it.
    signalLibvirtd('SIGSTOP');
    let pending: Promise<unknown>[];
    try {
      pending = [c.connectGetVersion(), c.connectListAllDomains(), c.domainLookupByName(`${P}-restart`)].map((p) =>
        p.then(
          () => new Error('resolved?!'),
          (e: unknown) => e,
        ),
      );
      await new Promise((r) => setTimeout(r, 100));
      expect(c.pendingCalls).toBe(3);
    } finally {
      signalLibvirtd('SIGKILL');
    }
    const killedAt = Date.now();
    const errors = await Promise.all(pending);
    const failedAfterMs = Date.now() - killedAt;
    expect(failedAfterMs).toBeLessThan(2000);
    for (const e of errors) {
      expect(e).toBeInstanceOf(ConnectionError);
      expect(e).toMatchObject({ reason: 'lost' });
      expect((e as Error).message).toMatch(/connection to \/var\/run\/libvirt\/libvirt-sock (closed|failed)/);
      expect((e as Error).message).toMatch(/outcome on the host is unknown/);
    }
    expect((errors[0] as ConnectionError).procedure).toBe('connectGetVersion');
    expect((await disconnected).reason).toBe('lost');
    expect(c.isConnected).toBe(false);
    await expect(c.connectGetVersion()).rejects.toBeInstanceOf(ConnectionError);

    // While it is down, connecting fails fast with a clear error.
    const down = await LibvirtClient.connect(URI, { connectTimeoutMs: 2000 }).catch((e: unknown) => e);
    expect(down).toBeInstanceOf(ConnectionError);
    expect((down as ConnectionError).reason).toBe('connect');

    // Restart and reconnect.
    startLibvirtd().catch(() => undefined); // waits for the killed daemon to be reaped, then starts a new one
    const { client: c2, waitedMs } = await connectWhenUp(60_000);
    console.info(`pending calls failed ${failedAfterMs} ms after SIGKILL; reconnected ${waitedMs} ms after restart`);
    try {
      expect(waitedMs).toBeLessThan(60_000);
      expect(await c2.connectGetVersion()).toBeGreaterThan(0);
      expect(Array.isArray(await c2.connectListAllDomains())).toBe(true);
      expect(c2.isConnected).toBe(true);
    } finally {
      await c2.close();
      await c.close();
    }
  });
});
