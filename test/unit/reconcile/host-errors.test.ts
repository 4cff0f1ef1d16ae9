/**
 * libvirt errors become HostError codes; `invalid` ones (the request is wrong for this host) are
 * not retried by apply, everything else is.
 */
import { describe, expect, it } from 'vitest';
import { LibvirtError } from '../../../src/libvirt/index.js';
import { toHostError } from '../../../src/reconcile/adapters/libvirt-host.js';

const err = (code: number, message: string): LibvirtError =>
  new LibvirtError({ code, domain: 0, level: 2, message, str1: null, str2: null, str3: null, int1: 0, int2: 0 } as never);

describe('toHostError', () => {
  it.each([
    [27, 'XML error: bad document'],
    [92, 'XML document failed to validate against schema'],
    [8, 'invalid argument: capacity too small'],
    [67, 'unsupported configuration'],
    [3, 'this function is not supported by the connection driver'],
    [44, 'invalid MAC address'],
    [74, 'argument unsupported: flag'],
    [84, 'Operation not supported'],
    [88, 'access denied'],
  ])('libvirt code %i is invalid (not retried)', (code, message) => {
    const e = toHostError(err(code, message), 'define domain x');
    expect(e.code).toBe('invalid');
    expect(e.message).toBe(`define domain x: ${message}`);
    expect(e.libvirtCode).toBe(code);
  });

  it.each([
    [1, 'internal error: process exited while connecting to monitor', 'operation-failed'],
    [9, 'operation failed: domain is already running', 'operation-failed'],
    [42, 'Domain not found', 'not-found'],
    [90, 'storage volume already exists', 'already-exists'],
  ])('libvirt code %i is %s', (code, message, want) => {
    expect(toHostError(err(code, message), 'ctx').code).toBe(want);
  });
});
