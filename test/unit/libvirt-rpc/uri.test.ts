import { describe, expect, it } from 'vitest';
import { DEFAULT_SOCKET, DEFAULT_SOCKET_RO, parseUri, socketPathFor, UriError } from '../../../src/libvirt/index.js';

describe('parseUri', () => {
  it('qemu:///system: unix, default socket, sent as is', () => {
    const p = parseUri('qemu:///system');
    expect(p).toMatchObject({ driver: 'qemu', transport: 'unix', path: '/system', remoteName: 'qemu:///system' });
    expect(socketPathFor(p)).toBe(DEFAULT_SOCKET);
    expect(socketPathFor(p, { readOnly: true })).toBe(DEFAULT_SOCKET_RO);
  });

  it('qemu:///session uses the per-user runtime socket', () => {
    const p = parseUri('qemu:///session');
    expect(p.remoteName).toBe('qemu:///session');
    expect(socketPathFor(p, { env: { XDG_RUNTIME_DIR: '/run/user/1000' } })).toBe('/run/user/1000/libvirt/libvirt-sock');
    expect(socketPathFor(p, { env: { HOME: '/home/u' } })).toBe('/home/u/.cache/libvirt/libvirt-sock');
  });

  it('test+unix:///default drops the transport from the remote name', () => {
    const p = parseUri('test+unix:///default');
    expect(p).toMatchObject({ driver: 'test', transport: 'unix', remoteName: 'test:///default' });
    expect(socketPathFor(p)).toBe(DEFAULT_SOCKET);
  });

  it('qemu+tcp://host:port/system: tcp, remote name without host/port/user', () => {
    expect(parseUri('qemu+tcp://root@10.0.0.5:16000/system')).toMatchObject({
      transport: 'tcp',
      host: '10.0.0.5',
      port: 16000,
      user: 'root',
      remoteName: 'qemu:///system',
    });
    expect(parseUri('qemu+tcp://h/system').port).toBe(16509);
    expect(parseUri('qemu+tcp://[::1]:1234/system')).toMatchObject({ host: '::1', port: 1234 });
  });

  it('?socket= picks the socket and is not sent; other parameters are', () => {
    const p = parseUri('qemu+unix:///system?socket=/tmp/x.sock&mode=legacy&foo=a%20b');
    expect(p.socket).toBe('/tmp/x.sock');
    expect(socketPathFor(p, { readOnly: true })).toBe('/tmp/x.sock');
    expect(p.params).toEqual({ foo: 'a b' });
    expect(p.remoteName).toBe('qemu:///system?foo=a%20b');
  });

  it('?name= overrides the remote name', () => {
    expect(parseUri('qemu+unix:///system?name=qemu:///embed').remoteName).toBe('qemu:///embed');
  });

  it('rejects what it cannot do, with a clear error', () => {
    expect(() => parseUri('nonsense')).toThrow(UriError);
    expect(() => parseUri('qemu+libssh2://host/system')).toThrow(/not supported.*qemu\+ssh/);
    expect(() => parseUri('qemu+ext:///system?command=/bin/x')).toThrow(/not supported/);
    expect(() => parseUri('qemu+ssh://h/system?command=/bin/x')).toThrow(/command= is not supported/);
    expect(() => parseUri('qemu+tcp:///system')).toThrow(/needs a host/);
    expect(() => parseUri('qemu+tcp://h:99999/system')).toThrow(/bad port/);
  });
});
