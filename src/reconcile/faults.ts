/**
 * Fault injection for tests of retries, failure reporting and crash recovery.
 *
 * `VIRTFORM_TEST_FAIL="startDomain:web-1,createVolume:data:2"` makes the named HostPort method
 * fail for that resource name (always, or the given number of times) before reaching libvirt.
 * `VIRTFORM_TEST_CRASH_AT=N` kills the process with SIGKILL at the N-th journal boundary.
 * Neither is set in normal operation; both are read only by the CLI.
 */
import { HostError, type HostPort } from './ports.js';

export function parseFaultSpec(spec: string): Map<string, number> {
  const out = new Map<string, number>();
  for (const part of spec.split(',').map((s) => s.trim()).filter(Boolean)) {
    const [op, name, times] = part.split(':');
    if (!op || !name) throw new Error(`bad fault spec "${part}": expected method:name[:times]`);
    out.set(`${op}:${name}`, times ? Number(times) : Number.POSITIVE_INFINITY);
  }
  return out;
}

/** Wrap a host so that listed method:name pairs throw an operation-failed HostError. */
export function withInjectedFaults(host: HostPort, faults: Map<string, number>): HostPort {
  return new Proxy(host, {
    get(target, prop, receiver) {
      const value = Reflect.get(target, prop, receiver) as unknown;
      if (typeof value !== 'function') return value;
      return (...args: unknown[]) => {
        const first = args[0];
        const name = typeof first === 'string' ? first : (first as { name?: string } | undefined)?.name;
        const second = typeof args[1] === 'string' ? args[1] : undefined;
        for (const candidate of [name, second]) {
          const key = `${String(prop)}:${candidate}`;
          const left = faults.get(key);
          if (candidate !== undefined && left !== undefined && left > 0) {
            faults.set(key, left - 1);
            return Promise.reject(new HostError('operation-failed', `injected failure: ${String(prop)} ${candidate}`));
          }
        }
        return (value as (...a: unknown[]) => unknown).apply(target, args);
      };
    },
  });
}

/** The host wrapper `VIRTFORM_TEST_FAIL` asks for (each call counts failures afresh), or none. */
export function faultWrapperFromEnv(env: NodeJS.ProcessEnv = process.env): ((host: HostPort) => HostPort) | undefined {
  const spec = env.VIRTFORM_TEST_FAIL;
  return spec ? (host) => withInjectedFaults(host, parseFaultSpec(spec)) : undefined;
}

/** A boundary callback that SIGKILLs this process at the n-th call. */
export function crashAtBoundary(n: number, log?: (label: string) => void): (label: string) => void {
  let count = 0;
  return (label: string) => {
    count += 1;
    if (count === n) {
      log?.(label);
      process.kill(process.pid, 'SIGKILL');
    }
  };
}
