/**
 * Fault injection for tests of retries, failure reporting and crash recovery.
 *
 * `VIRTFORM_TEST_FAIL="startDomain:web-1,createVolume:data:2"` makes the named HostPort method
 * fail for that resource name (always, or the given number of times) before reaching libvirt.
 * The name `*` matches every call of the method, also those without a name (`domainCapabilities`).
 * A last part naming a HostError code (`connection`, `not-found`, …) throws that code instead of
 * `operation-failed`: `domainCapabilities:*:connection`, `snapshot:*:1:connection`.
 * `VIRTFORM_TEST_CRASH_AT=N` kills the process with SIGKILL at the N-th journal boundary.
 * Neither is set in normal operation; both are read only by the CLI.
 */
import { HostError, type HostErrorCode, type HostPort } from './ports.js';

const CODES: readonly HostErrorCode[] = ['not-found', 'already-exists', 'invalid', 'operation-failed', 'connection', 'unknown'];

export interface Fault {
  left: number;
  code: HostErrorCode;
}

export function parseFaultSpec(spec: string): Map<string, Fault> {
  const out = new Map<string, Fault>();
  for (const part of spec.split(',').map((s) => s.trim()).filter(Boolean)) {
    const [op, name, ...rest] = part.split(':');
    if (!op || !name) throw new Error(`bad fault spec "${part}": expected method:name[:times][:code]`);
    let left = Number.POSITIVE_INFINITY;
    let code: HostErrorCode = 'operation-failed';
    for (const r of rest) {
      if (/^\d+$/.test(r)) left = Number(r);
      else if ((CODES as readonly string[]).includes(r)) code = r as HostErrorCode;
      else throw new Error(`bad fault spec "${part}": "${r}" is neither a count nor one of ${CODES.join(', ')}`);
    }
    out.set(`${op}:${name}`, { left, code });
  }
  return out;
}

/** Wrap a host so that listed method:name pairs throw a HostError (operation-failed unless the spec names a code). */
export function withInjectedFaults(host: HostPort, faults: Map<string, Fault>): HostPort {
  return new Proxy(host, {
    get(target, prop, receiver) {
      const value = Reflect.get(target, prop, receiver) as unknown;
      if (typeof value !== 'function') return value;
      return (...args: unknown[]) => {
        const first = args[0];
        const name = typeof first === 'string' ? first : (first as { name?: string } | undefined)?.name;
        const second = typeof args[1] === 'string' ? args[1] : undefined;
        for (const candidate of [name, second, '*']) {
          const key = `${String(prop)}:${candidate}`;
          const fault = faults.get(key);
          if (candidate !== undefined && fault !== undefined && fault.left > 0) {
            fault.left -= 1;
            return Promise.reject(new HostError(fault.code, `injected failure: ${String(prop)} ${candidate === '*' ? (name ?? '') : candidate}`.trimEnd()));
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
