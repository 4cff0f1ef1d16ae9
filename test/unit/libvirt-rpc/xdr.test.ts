import { randomUUID } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import {
  type Domain,
  readDomain,
  readRemoteError,
  readStorageVol,
  type RemoteError,
  uuidToBytes,
  uuidToString,
  writeDomain,
  writeRemoteError,
  writeStorageVol,
  XdrError,
  XdrReader,
  XdrWriter,
} from '../../../src/libvirt/index.js';

const hex = (b: Buffer) => b.toString('hex');
const enc = (f: (w: XdrWriter) => void) => {
  const w = new XdrWriter(4);
  f(w);
  return Buffer.from(w.finish());
};

describe('XDR integers', () => {
  it('encodes int and uint big-endian in 4 bytes', () => {
    expect(hex(enc((w) => w.int(1)))).toBe('00000001');
    expect(hex(enc((w) => w.int(-1)))).toBe('ffffffff');
    expect(hex(enc((w) => w.int(-2147483648)))).toBe('80000000');
    expect(hex(enc((w) => w.uint(0xdeadbeef)))).toBe('deadbeef');
  });

  it('round-trips the int and uint ranges', () => {
    const ints = [0, 1, -1, 2147483647, -2147483648, 123456789];
    const uints = [0, 1, 0x7fffffff, 0x80000000, 0xffffffff];
    const b = enc((w) => {
      ints.forEach((v) => w.int(v));
      uints.forEach((v) => w.uint(v));
    });
    const r = new XdrReader(b);
    expect(ints.map(() => r.int())).toEqual(ints);
    expect(uints.map(() => r.uint())).toEqual(uints);
    r.done();
  });

  it('rejects out-of-range and non-integer values', () => {
    const w = new XdrWriter();
    expect(() => w.int(2147483648)).toThrow(XdrError);
    expect(() => w.int(1.5)).toThrow(XdrError);
    expect(() => w.uint(-1)).toThrow(XdrError);
    expect(() => w.uint(2 ** 32)).toThrow(XdrError);
  });

  it('encodes hyper and unsigned hyper in 8 bytes, from bigint or safe number', () => {
    expect(hex(enc((w) => w.hyper(-1n)))).toBe('ffffffffffffffff');
    expect(hex(enc((w) => w.uhyper(2n ** 64n - 1n)))).toBe('ffffffffffffffff');
    expect(hex(enc((w) => w.uhyper(0x0102030405060708n)))).toBe('0102030405060708');
    expect(hex(enc((w) => w.uhyper(9000000)))).toBe('0000000000895440');
    expect(hex(enc((w) => w.hyper(-(2n ** 63n))))).toBe('8000000000000000');
  });

  it('round-trips hyper extremes as bigint', () => {
    const vals = [0n, 1n, -1n, 2n ** 63n - 1n, -(2n ** 63n)];
    const uvals = [0n, 2n ** 53n + 1n, 2n ** 64n - 1n];
    const b = enc((w) => {
      vals.forEach((v) => w.hyper(v));
      uvals.forEach((v) => w.uhyper(v));
    });
    const r = new XdrReader(b);
    expect(vals.map(() => r.hyper())).toEqual(vals);
    expect(uvals.map(() => r.uhyper())).toEqual(uvals);
  });

  it('reads hypers as numbers only when safe', () => {
    const b = enc((w) => w.uhyper(Number.MAX_SAFE_INTEGER).uhyper(2n ** 53n).hyper(-42));
    const r = new XdrReader(b);
    expect(r.uhyperNumber()).toBe(Number.MAX_SAFE_INTEGER);
    expect(() => r.uhyperNumber()).toThrow(/not a safe integer/);
    expect(r.hyperNumber()).toBe(-42);
  });

  it('rejects hypers out of range and unsafe numbers', () => {
    const w = new XdrWriter();
    expect(() => w.hyper(2n ** 63n)).toThrow(XdrError);
    expect(() => w.uhyper(-1n)).toThrow(XdrError);
    expect(() => w.uhyper(2n ** 64n)).toThrow(XdrError);
    expect(() => w.uhyper(2 ** 60)).toThrow(/safe/);
  });

  it('bool is an int 0/1 and anything else is invalid on read', () => {
    expect(hex(enc((w) => w.bool(true).bool(false)))).toBe('0000000100000000');
    expect(() => new XdrReader(Buffer.from('00000002', 'hex')).bool()).toThrow(/invalid bool/);
  });
});

describe('XDR strings and opaque data', () => {
  it('pads strings with zeros to a multiple of 4', () => {
    expect(hex(enc((w) => w.string('')))).toBe('00000000');
    expect(hex(enc((w) => w.string('a')))).toBe('00000001' + '61000000');
    expect(hex(enc((w) => w.string('abc')))).toBe('00000003' + '61626300');
    expect(hex(enc((w) => w.string('abcd')))).toBe('00000004' + '61626364');
    expect(hex(enc((w) => w.string('abcde')))).toBe('00000005' + '6162636465000000');
  });

  it('round-trips strings of every padding length and UTF-8', () => {
    const strs = ['', 'x', 'xy', 'xyz', 'wxyz', 'vwxyz', 'héllo wörld ✓', 'a'.repeat(70001)];
    const b = enc((w) => strs.forEach((s) => w.string(s)));
    expect(b.length % 4).toBe(0);
    const r = new XdrReader(b);
    expect(strs.map(() => r.string())).toEqual(strs);
    r.done();
  });

  it('decodes invalid UTF-8 from the wire with U+FFFD replacements (as TextDecoder does), reading on after it', () => {
    const bad = [[0x61, 0xff, 0x62], [0xe2, 0x82, 0x41], [0xf0, 0x9f, 0x98], [0xed, 0xa0, 0x80, 0x41], [0xc0, 0xaf]];
    const b = Buffer.concat([...bad.map((x) => enc((w) => w.opaque(Buffer.from(x)))), enc((w) => w.string('tail'))]);
    const r = new XdrReader(b);
    const td = new TextDecoder('utf-8', { fatal: false });
    for (const x of bad) expect(r.string()).toBe(td.decode(Buffer.from(x)));
    expect(r.string()).toBe('tail');
    r.done();
  });

  it('reads a UUID in place, at any offset in a larger message', () => {
    const u = '6695eb01-f6a4-8304-79aa-97f2502e193f';
    const b = enc((w) => { w.uint(7); w.opaqueFixed(uuidToBytes(u), 16); w.string('after'); });
    const r = new XdrReader(Buffer.concat([Buffer.from([1, 2, 3]), b]).subarray(3));
    expect(r.uint()).toBe(7);
    expect(r.uuid()).toBe(u);
    expect(r.string()).toBe('after');
    r.done();
    expect(() => new XdrReader(Buffer.alloc(15)).uuid()).toThrow(XdrError);
  });

  it('counts string limits in UTF-8 bytes', () => {
    expect(() => new XdrWriter().string('éé', 3)).toThrow(/limit 3/);
    const b = enc((w) => w.string('abcdef'));
    expect(() => new XdrReader(b).string(5)).toThrow(/exceeds its limit 5/);
  });

  it('round-trips fixed and variable opaque data with padding', () => {
    const fixed = Buffer.from([1, 2, 3, 4, 5]);
    const vars = [Buffer.alloc(0), Buffer.from([9]), Buffer.from([1, 2, 3, 4, 5, 6, 7])];
    const b = enc((w) => {
      w.opaqueFixed(fixed, 5);
      vars.forEach((v) => w.opaque(v));
    });
    expect(hex(b.subarray(0, 8))).toBe('0102030405000000');
    const r = new XdrReader(b);
    expect(r.opaqueFixed(5)).toEqual(fixed);
    expect(vars.map(() => r.opaque())).toEqual(vars);
    r.done();
    expect(() => new XdrWriter().opaqueFixed(fixed, 4)).toThrow(/must be 4 bytes/);
  });

  it('fails cleanly on truncated data, including missing padding', () => {
    const b = enc((w) => w.string('abcde'));
    expect(() => new XdrReader(b.subarray(0, b.length - 1)).string()).toThrow(/truncated/);
    expect(() => new XdrReader(b.subarray(0, 3)).int()).toThrow(XdrError);
    expect(() => new XdrReader(Buffer.alloc(7)).uhyper()).toThrow(/truncated/);
  });

  it('reports trailing bytes', () => {
    const r = new XdrReader(enc((w) => w.int(1).int(2)));
    r.int();
    expect(() => r.done()).toThrow(/4 unexpected trailing bytes/);
  });
});

describe('XDR optional values and arrays', () => {
  it('encodes optional values as a bool then the value', () => {
    const b = enc((w) => {
      w.optional('abc', (x, s) => x.string(s));
      w.optional(null, (x, s: string) => x.string(s));
      w.optional(undefined, (x, n: number) => x.int(n));
    });
    expect(hex(b)).toBe('00000001' + '00000003' + '61626300' + '00000000' + '00000000');
    const r = new XdrReader(b);
    expect(r.optional((x) => x.string())).toBe('abc');
    expect(r.optional((x) => x.string())).toBeNull();
    expect(r.optional((x) => x.int())).toBeNull();
  });

  it('rejects a bad optional discriminant', () => {
    expect(() => new XdrReader(Buffer.from('0000000700000001', 'hex')).optional((x) => x.int())).toThrow(/invalid bool/);
  });

  it('round-trips variable and fixed arrays', () => {
    const b = enc((w) => {
      w.array([1, -2, 3], (x, v) => x.int(v));
      w.array([], (x, v: string) => x.string(v));
      w.array(['a', 'bb'], (x, v) => x.string(v));
      w.fixedArray([7, 8], 2, (x, v) => x.uint(v));
    });
    const r = new XdrReader(b);
    expect(r.array((x) => x.int())).toEqual([1, -2, 3]);
    expect(r.array((x) => x.string())).toEqual([]);
    expect(r.array((x) => x.string())).toEqual(['a', 'bb']);
    expect(r.fixedArray(2, (x) => x.uint())).toEqual([7, 8]);
    r.done();
  });

  it('enforces array limits and rejects absurd counts without allocating', () => {
    expect(() => new XdrWriter().array([1, 2, 3], (x, v) => x.int(v), 2)).toThrow(/limit 2/);
    const b = enc((w) => w.array([1, 2, 3], (x, v) => x.int(v)));
    expect(() => new XdrReader(b).array((x) => x.int(), 2)).toThrow(/exceeds its limit 2/);
    // A count of 0x7fffffff with 4 bytes behind it.
    expect(() => new XdrReader(Buffer.from('7fffffff00000001', 'hex')).array((x) => x.int())).toThrow(/larger than the remaining/);
  });

  it('grows its buffer across many writes', () => {
    const w = new XdrWriter(4);
    for (let i = 0; i < 10000; i++) w.uint(i);
    const r = new XdrReader(w.finish());
    for (let i = 0; i < 10000; i++) expect(r.uint()).toBe(i);
  });
});

describe('UUIDs and libvirt structs', () => {
  it('converts UUIDs between the 16-byte opaque and the canonical string', () => {
    const s = '6695eb01-f6a4-8304-79aa-97f2502e193f';
    const b = uuidToBytes(s);
    expect(b.length).toBe(16);
    expect(hex(b)).toBe('6695eb01f6a4830479aa97f2502e193f');
    expect(uuidToString(b)).toBe(s);
    expect(uuidToString(uuidToBytes('6695EB01F6A4830479AA97F2502E193F'))).toBe(s);
    expect(() => uuidToBytes('not-a-uuid')).toThrow(/invalid UUID/);
    expect(() => uuidToString(Buffer.alloc(15))).toThrow(/16 bytes/);
  });

  it('uuidToString: every byte value, views at an offset, and strings that outlive the next call', () => {
    expect(uuidToString(Buffer.alloc(16))).toBe('00000000-0000-0000-0000-000000000000');
    expect(uuidToString(Buffer.alloc(16, 0xff))).toBe('ffffffff-ffff-ffff-ffff-ffffffffffff');
    const seen: string[] = [];
    for (let i = 0; i < 500; i++) {
      const u = randomUUID();
      const wire = Buffer.concat([Buffer.from([i & 0xff, 7, 7]), uuidToBytes(u), Buffer.from([9])]);
      seen.push(uuidToString(wire.subarray(3, 19)));
      expect(seen[i]).toBe(u);
    }
    expect(new Set(seen).size).toBe(500); // earlier results are not overwritten by later calls
    for (let v = 0; v < 256; v++) {
      const hh = v.toString(16).padStart(2, '0');
      expect(uuidToString(Buffer.alloc(16, v))).toBe([8, 4, 4, 4, 12].map((n) => hh.repeat(n / 2)).join('-'));
    }
  });

  it('round-trips remote_nonnull_domain (uuid is 16 raw bytes, no length)', () => {
    const d: Domain = { name: 'vm-1', uuid: '00112233-4455-6677-8899-aabbccddeeff', id: -1 };
    const b = enc((w) => writeDomain(w, d));
    // name: len 4 + "vm-1"; uuid: 16 bytes; id: -1
    expect(hex(b)).toBe('00000004' + '766d2d31' + '00112233445566778899aabbccddeeff' + 'ffffffff');
    expect(readDomain(new XdrReader(b))).toEqual(d);
  });

  it('round-trips remote_nonnull_storage_vol', () => {
    const v = { pool: 'p', name: 'disk.qcow2', key: '/var/lib/x/disk.qcow2' };
    const r = new XdrReader(enc((w) => writeStorageVol(w, v)));
    expect(readStorageVol(r)).toEqual(v);
    r.done();
  });

  it('round-trips remote_error with optional fields set and unset', () => {
    const full: RemoteError = {
      code: 42,
      domain: 10,
      message: "Domain not found: no domain with matching name 'x'",
      level: 2,
      dom: { name: 'x', uuid: '00000000-0000-0000-0000-000000000001', id: 3 },
      str1: 'a',
      str2: null,
      str3: 'ccc',
      int1: -1,
      int2: 7,
      net: { name: 'n', uuid: '00000000-0000-0000-0000-000000000002' },
    };
    const bare: RemoteError = { ...full, message: null, dom: null, str1: null, str3: null, net: null };
    for (const e of [full, bare]) {
      const r = new XdrReader(enc((w) => writeRemoteError(w, e)));
      expect(readRemoteError(r)).toEqual(e);
      r.done();
    }
  });
});
