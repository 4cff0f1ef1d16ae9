/**
 * A host wrapper (`WatchOptions.wrapHost`) that removes a file at every host call: the file is gone
 * after the manifests were validated (load happens before the run's first host call) and before a
 * kind reads it (an image a Volume imports).
 */
import { rmSync } from 'node:fs';
import type { HostPort } from '../../src/reconcile/ports.js';

export function removingOnCall(path: string): (host: HostPort) => HostPort {
  return (host) => new Proxy(host, {
    get(target, prop, receiver) {
      const v = Reflect.get(target, prop, receiver) as unknown;
      if (typeof v !== 'function') return v;
      return (...args: unknown[]) => {
        rmSync(path, { force: true });
        return (v as (...a: unknown[]) => unknown).apply(target, args);
      };
    },
  });
}
