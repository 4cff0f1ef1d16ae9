/** How the libvirt adapter classifies errors for the reconciler (retry or not). */
import { describe, expect, it } from 'vitest';
import { toHostError } from '../../../src/reconcile/adapters/libvirt-host.js';
import { LibvirtXmlError } from '../../../src/libvirt/xml/index.js';
import { HostError } from '../../../src/reconcile/ports.js';

describe('toHostError', () => {
  it('a definition the XML builder rejects is invalid input (not retried), like libvirt XML errors', () => {
    const e = toHostError(new LibvirtXmlError('invalid-input', 'vcpus must be an integer >= 1, got 0'), 'define domain x');
    expect(e).toBeInstanceOf(HostError);
    expect([e.code, e.message, e.libvirtCode]).toEqual(['invalid', 'define domain x: vcpus must be an integer >= 1, got 0', undefined]);
  });
  it('a reply the parser cannot read stays unknown', () => {
    expect(toHostError(new LibvirtXmlError('malformed-xml', 'bad'), 'get domain x').code).toBe('unknown');
    expect(toHostError(new Error('boom'), 'c').code).toBe('unknown');
  });
  it('passes HostErrors through', () => {
    const e = new HostError('not-found', 'gone');
    expect(toHostError(e, 'c')).toBe(e);
  });
});
