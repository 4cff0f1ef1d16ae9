/**
 * The protocol generator (scripts/gen-protocol.ts, scripts/xdr-parse.ts) and the codecs it
 * generated: the parser on the XDR features libvirt's files use, header constants, the
 * "mutating" rule, generated codecs against XDR bytes computed by hand, and, when libvirt's
 * sources are in the cache, a byte-for-byte regeneration of src/libvirt/generated/.
 */
import { existsSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { DEFAULT_CACHE, diffDirs, generate, isMutatingAcl, LIBVIRT_VERSION, OUT_DIR, procMethodName, writeOutput } from '../../../scripts/gen-protocol.js';
import { evalConst, parseAnnotations, parseHeaderConstants, parseXdr } from '../../../scripts/xdr-parse.js';
import {
  LibvirtClient,
  PROCEDURES,
  readRemoteConnectListAllDomainsRet,
  readRemoteDomainGetInfoRet,
  readRemoteError,
  readRemoteTypedParam,
  readVirNetStreamHole,
  REMOTE_PROC_DOMAIN_EVENT_CALLBACK_LIFECYCLE,
  type RemoteTypedParam,
  VIR_DOMAIN_UNDEFINE_NVRAM,
  VIR_STORAGE_VOL_UPLOAD_SPARSE_STREAM,
  VIR_TYPED_PARAM_STRING,
  VIR_TYPED_PARAM_ULLONG,
  VIR_UUID_BUFLEN,
  writeRemoteConnectListAllDomainsArgs,
  writeRemoteTypedParam,
  writeVirNetStreamHole,
  XdrError,
  XdrReader,
  XdrWriter,
} from '../../../src/libvirt/index.js';
import { makeTempDir } from '../../support/temp-dirs.js';

const hex = (b: Uint8Array) => Buffer.from(b).toString('hex');
const enc = (f: (w: XdrWriter) => void) => {
  const w = new XdrWriter();
  f(w);
  return hex(w.finish());
};

describe('XDR parser', () => {
  const SRC = `
%#include "x.h"
/* a comment */
const MAX = 4;
typedef opaque my_uuid[16];
typedef string name_t<MAX>;
typedef name_t *opt_name;
enum color { RED = 1, GREEN, BLUE = MAX };
struct thing {
    name_t name;
    my_uuid id;
    opaque blob<>;
    int list<MAX>;
    unsigned hyper big;
    unsigned char small;
    struct thing *next;
    double d;
};
union choice switch (color c) {
 case RED:
 case GREEN:
     int n;
 case BLUE:
     void;
 default:
     string s<>;
};
enum remote_procedure {
    /**
     * @generate: both
     * @acl: domain:write
     * @acl: domain:save:!VIR_DOMAIN_AFFECT_CONFIG|VIR_DOMAIN_AFFECT_LIVE
     * @writestream: 1
     * @sparseflag: VIR_X
     */
    REMOTE_PROC_DOMAIN_GET_XML_DESC = 14
};`;
  const defs = parseXdr(SRC, 'test.x');

  it('reads const, typedefs (fixed opaque, bounded string, optional), enums with implicit values', () => {
    expect(defs[0]).toEqual({ kind: 'const', name: 'MAX', value: { num: 4n } });
    expect(defs[1]).toEqual({ kind: 'typedef', decl: { type: { kind: 'opaque' }, name: 'my_uuid', array: { fixed: true, size: { num: 16n } } } });
    expect(defs[2]).toEqual({ kind: 'typedef', decl: { type: { kind: 'string' }, name: 'name_t', array: { fixed: false, max: { name: 'MAX' } } } });
    expect(defs[3]).toEqual({ kind: 'typedef', decl: { type: { kind: 'named', name: 'name_t' }, name: 'opt_name', optional: true } });
    expect(defs[4]).toMatchObject({
      kind: 'enum',
      members: [
        { name: 'RED', value: { num: 1n } },
        { name: 'GREEN', value: { num: 2n } },
        { name: 'BLUE', value: { name: 'MAX' } },
      ],
    });
  });

  it('reads struct fields: unbounded opaque, bounded arrays, unsigned hyper/char, optional self-reference, double', () => {
    const s = defs[5]!;
    expect(s.kind).toBe('struct');
    if (s.kind !== 'struct') return;
    expect(s.fields.map((f) => [f.name, f.type, f.array ?? null, f.optional ?? false])).toEqual([
      ['name', { kind: 'named', name: 'name_t' }, null, false],
      ['id', { kind: 'named', name: 'my_uuid' }, null, false],
      ['blob', { kind: 'opaque' }, { fixed: false }, false],
      ['list', { kind: 'prim', prim: 'int' }, { fixed: false, max: { name: 'MAX' } }, false],
      ['big', { kind: 'prim', prim: 'uhyper' }, null, false],
      ['small', { kind: 'prim', prim: 'uchar' }, null, false],
      ['next', { kind: 'named', name: 'thing' }, null, true],
      ['d', { kind: 'prim', prim: 'double' }, null, false],
    ]);
  });

  it('reads a union: enum discriminant, shared cases, a void arm and a default', () => {
    expect(defs[6]).toEqual({
      kind: 'union',
      name: 'choice',
      discriminant: { type: { kind: 'named', name: 'color' }, name: 'c' },
      arms: [
        { cases: [{ name: 'RED' }, { name: 'GREEN' }], decl: { type: { kind: 'prim', prim: 'int' }, name: 'n' } },
        { cases: [{ name: 'BLUE' }], decl: null },
      ],
      default: { decl: { type: { kind: 'string' }, name: 's', array: { fixed: false } } },
    });
  });

  it('keeps the procedure annotations', () => {
    const p = defs[7]!;
    if (p.kind !== 'enum') throw new Error('not an enum');
    expect(parseAnnotations(p.members[0]!.doc)).toEqual({
      generate: 'both',
      acl: ['domain:write', 'domain:save:!VIR_DOMAIN_AFFECT_CONFIG|VIR_DOMAIN_AFFECT_LIVE'],
      aclfilter: [],
      writestream: 1,
      sparseflag: 'VIR_X',
    });
    expect(procMethodName('REMOTE_PROC_DOMAIN_GET_XML_DESC')).toBe('domainGetXmlDesc');
  });

  it('rejects what it does not understand, with file and line', () => {
    expect(() => parseXdr('struct a { string s; };', 'bad.x')).toThrow(/bad\.x:1: a string needs <>/);
    expect(() => parseXdr('struct a {\n int x\n};', 'bad.x')).toThrow(/bad\.x:3: expected ";"/);
    expect(() => parseXdr('program P { };', 'bad.x')).toThrow(/unexpected "program" at top level/);
    expect(() => parseXdr('struct a { int *x<4>; };', 'bad.x')).toThrow(/optional arrays/);
  });
});

describe('header constants', () => {
  it('reads enums (expressions, implicit values, references), defines; skips sentinels and macros', () => {
    const known = new Map<string, bigint | string>();
    const h = `
# define VIR_UUID_BUFLEN (16)
# define VIR_NAME "name" /* a string */
# define VIR_FN(x) ((x) + 1)
typedef enum {
    VIR_A = 1 << 0,   /* doc */
    VIR_B = 1U << 31,
    VIR_C = VIR_A | VIR_B,
    VIR_D,
# ifdef VIR_ENUM_SENTINELS
    VIR_LAST
# endif
} virThing;`;
    expect(parseHeaderConstants(h, known)).toEqual([
      { name: 'VIR_UUID_BUFLEN', value: 16n, group: 'define' },
      { name: 'VIR_NAME', value: 'name', group: 'define' },
      { name: 'VIR_A', value: 1n, group: 'virThing' },
      { name: 'VIR_B', value: 2147483648n, group: 'virThing' },
      { name: 'VIR_C', value: 2147483649n, group: 'virThing' },
      { name: 'VIR_D', value: 2147483650n, group: 'virThing' },
    ]);
    expect(evalConst('(4096 + 1) * 2 - ~0', known)).toBe(8195n);
    expect(evalConst('UNKNOWN + 1', known)).toBeUndefined();
  });

  it('generated values match libvirt', () => {
    expect(VIR_UUID_BUFLEN).toBe(16);
    expect(VIR_DOMAIN_UNDEFINE_NVRAM).toBe(4);
    expect(VIR_STORAGE_VOL_UPLOAD_SPARSE_STREAM).toBe(1);
    expect(VIR_TYPED_PARAM_STRING).toBe(7);
  });
});

describe('procedure table', () => {
  it('"mutating" comes from the ACL permissions', () => {
    expect(isMutatingAcl(['domain:getattr'])).toBe(false);
    expect(isMutatingAcl(['connect:search_domains', 'domain:getattr'])).toBe(false);
    expect(isMutatingAcl(['domain:read', 'domain:read_secure:VIR_DOMAIN_XML_SECURE'])).toBe(false);
    expect(isMutatingAcl(['storage_pool:refresh'])).toBe(false);
    expect(isMutatingAcl(['none'])).toBe(false);
    expect(isMutatingAcl(['domain:write', 'domain:save'])).toBe(true);
    expect(isMutatingAcl(['storage_vol:data_write'])).toBe(true);
    expect(isMutatingAcl(['domain:read', 'domain:write:VIR_DOMAIN_AFFECT_CONFIG'])).toBe(true);
  });

  it('keeps the hand-written table of the 74 procedures virtform used (numbers and mutating)', () => {
    // The table virtform had before the generator: [name, number, mutating].
    const OLD: [string, number, boolean][] = [
      ['connectOpen', 1, false], ['connectClose', 2, false], ['connectGetType', 3, false], ['connectGetVersion', 4, false],
      ['connectGetCapabilities', 7, false], ['domainCreate', 9, true], ['domainDefineXml', 11, true], ['domainDestroy', 12, true],
      ['domainGetXmlDesc', 14, false], ['domainGetAutostart', 15, false], ['domainGetInfo', 16, false], ['domainLookupById', 22, false],
      ['domainLookupByName', 23, false], ['domainLookupByUuid', 24, false], ['domainSetAutostart', 29, true], ['domainShutdown', 33, true],
      ['domainUndefine', 35, true], ['networkCreate', 39, true], ['networkDefineXml', 41, true], ['networkDestroy', 42, true],
      ['networkGetXmlDesc', 43, false], ['networkGetAutostart', 44, false], ['networkLookupByName', 46, false], ['networkLookupByUuid', 47, false],
      ['networkSetAutostart', 48, true], ['networkUndefine', 49, true], ['connectGetHostname', 59, false], ['connectSupportsFeature', 60, false],
      ['authList', 66, false], ['authPolkit', 70, false], ['storagePoolDefineXml', 77, true], ['storagePoolCreate', 78, true],
      ['storagePoolBuild', 79, true], ['storagePoolDestroy', 80, true], ['storagePoolDelete', 81, true], ['storagePoolUndefine', 82, true],
      ['storagePoolRefresh', 83, false], ['storagePoolLookupByName', 84, false], ['storagePoolLookupByUuid', 85, false], ['storagePoolGetInfo', 87, false],
      ['storagePoolGetXmlDesc', 88, false], ['storagePoolGetAutostart', 89, false], ['storagePoolSetAutostart', 90, true], ['storageVolCreateXml', 93, true],
      ['storageVolDelete', 94, true], ['storageVolLookupByName', 95, false], ['storageVolLookupByKey', 96, false], ['storageVolLookupByPath', 97, false],
      ['storageVolGetInfo', 98, false], ['storageVolGetXmlDesc', 99, false], ['storageVolGetPath', 100, false], ['connectGetUri', 110, false],
      ['storageVolCreateXmlFrom', 125, true], ['domainIsActive', 150, false], ['domainIsPersistent', 151, false], ['networkIsActive', 152, false],
      ['networkIsPersistent', 153, false], ['storagePoolIsActive', 154, false], ['storagePoolIsPersistent', 155, false], ['connectGetLibVersion', 157, false],
      ['domainCreateWithFlags', 196, true], ['domainGetState', 212, false], ['domainUndefineFlags', 231, true], ['domainDestroyFlags', 234, true],
      ['domainShutdownFlags', 258, true], ['storageVolResize', 260, true], ['connectListAllDomains', 273, false], ['connectListAllStoragePools', 281, false],
      ['storagePoolListAllVolumes', 282, false], ['connectListAllNetworks', 283, false], ['networkUpdate', 291, true],
      ['connectDomainEventCallbackRegisterAny', 316, false], ['connectDomainEventCallbackDeregisterAny', 317, false], ['domainDefineXmlFlags', 350, true],
    ];
    const table = PROCEDURES as Record<string, { proc: number; mutating: boolean }>;
    expect(OLD.filter(([n, proc, mutating]) => table[n]?.proc !== proc || table[n]?.mutating !== mutating)).toEqual([]);
    expect(Object.keys(PROCEDURES).length).toBeGreaterThan(440);
    expect(REMOTE_PROC_DOMAIN_EVENT_CALLBACK_LIFECYCLE).toBe(318);
    expect(PROCEDURES.storageVolUpload).toEqual({ proc: 208, mutating: true, stream: 'write' });
  });

  it('every callable procedure is a LibvirtClient method', () => {
    const proto = LibvirtClient.prototype as unknown as Record<string, unknown>;
    const missing = Object.entries(PROCEDURES)
      .filter(([, i]) => !('event' in i))
      .map(([n]) => n)
      .filter((n) => typeof proto[n] !== 'function');
    expect(missing).toEqual([]);
    for (const n of ['nodeGetInfo', 'nodeGetFreeMemory', 'connectGetAllDomainStats', 'connectGetDomainCapabilities', 'domainBlockResize',
      'domainSetVcpusFlags', 'domainSetMemoryFlags', 'domainAttachDeviceFlags', 'domainDetachDeviceFlags', 'domainUpdateDeviceFlags',
      'networkGetDhcpLeases', 'domainInterfaceAddresses', 'domainMigratePrepare3Params', 'domainMigratePerform3Params', 'domainOpenConsole']) {
      expect(typeof proto[n], n).toBe('function');
    }
  });
});

describe('generated codecs against hand-computed XDR', () => {
  it('remote_connect_list_all_domains_args / _ret', () => {
    expect(enc((w) => writeRemoteConnectListAllDomainsArgs(w, { need_results: 1, flags: 0x41 }))).toBe('00000001' + '00000041');
    const ret = Buffer.from(
      '00000001' + // one domain
        '00000002' + '766d0000' + // name "vm" padded
        '00112233445566778899aabbccddeeff' + // uuid
        'ffffffff' + // id -1
        '00000007', // ret
      'hex',
    );
    const r = new XdrReader(ret);
    expect(readRemoteConnectListAllDomainsRet(r)).toEqual({
      domains: [{ name: 'vm', uuid: '00112233-4455-6677-8899-aabbccddeeff', id: -1 }],
      ret: 7,
    });
    r.done();
    // bound REMOTE_DOMAIN_LIST_MAX (16384)
    expect(() => readRemoteConnectListAllDomainsRet(new XdrReader(Buffer.from('00004001', 'hex')))).toThrow(/exceeds its limit 16384/);
  });

  it('remote_domain_get_info_ret: unsigned char/short as one unit, unsigned hypers as bigint', () => {
    const b = Buffer.from('00000001' + '0000000000100000' + '0000000000080000' + '00000002' + '00000001000000ff', 'hex');
    expect(readRemoteDomainGetInfoRet(new XdrReader(b))).toEqual({
      state: 1,
      maxMem: 0x100000n,
      memory: 0x80000n,
      nrVirtCpu: 2,
      cpuTime: 0x1000000ffn,
    });
  });

  it('remote_typed_param: the union round-trips; an unknown discriminant is an XdrError', () => {
    const p: RemoteTypedParam = { field: 'ab', value: { type: VIR_TYPED_PARAM_ULLONG, ul: 5n } };
    const bytes = enc((w) => writeRemoteTypedParam(w, p));
    expect(bytes).toBe('00000002' + '61620000' + '00000004' + '0000000000000005');
    expect(readRemoteTypedParam(new XdrReader(Buffer.from(bytes, 'hex')))).toEqual(p);
    const s: RemoteTypedParam = { field: 'x', value: { type: VIR_TYPED_PARAM_STRING, s: 'hello' } };
    expect(readRemoteTypedParam(new XdrReader(Buffer.from(enc((w) => writeRemoteTypedParam(w, s)), 'hex')))).toEqual(s);
    expect(() => readRemoteTypedParam(new XdrReader(Buffer.from('00000001' + '78000000' + '00000009', 'hex')))).toThrow(XdrError);
  });

  it('virNetStreamHole and remote_error (optional fields)', () => {
    expect(enc((w) => writeVirNetStreamHole(w, { length: 0x10000n, flags: 0 }))).toBe('0000000000010000' + '00000000');
    expect(readVirNetStreamHole(new XdrReader(Buffer.from('ffffffffffffffff00000000', 'hex')))).toEqual({ length: -1n, flags: 0 });
    const e = Buffer.from(
      '0000002a' + '0000000a' + '00000001' + '00000003' + '626f6f00' + '00000002' + '00000000' + '00000001' + '00000001' + '78000000' +
        '00000000' + '00000000' + '00000005' + '00000000' + '00000000',
      'hex',
    );
    expect(readRemoteError(new XdrReader(e))).toEqual({
      code: 42, domain: 10, message: 'boo', level: 2, dom: null, str1: 'x', str2: null, str3: null, int1: 5, int2: 0, net: null,
    });
  });
});

const cached = existsSync(join(DEFAULT_CACHE, `libvirt-${LIBVIRT_VERSION}`, '.complete'));

describe('regeneration', () => {
  it.skipIf(!cached)(
    `src/libvirt/generated/ is byte for byte what libvirt ${LIBVIRT_VERSION}'s cached sources generate (skipped without ${DEFAULT_CACHE}: run make check-protocol)`,
    () => {
      const tmp = makeTempDir('vf-gen-test-');
      try {
        const files = generate(join(DEFAULT_CACHE, `libvirt-${LIBVIRT_VERSION}`));
        writeOutput(files, tmp);
        expect(diffDirs(tmp, OUT_DIR)).toEqual([]);
        // deterministic: a second run gives the same text
        const again = generate(join(DEFAULT_CACHE, `libvirt-${LIBVIRT_VERSION}`));
        expect([...again]).toEqual([...files]);
      } finally {
        rmSync(tmp, { recursive: true, force: true });
      }
    },
  );
  if (!cached) console.warn(`gen-protocol regeneration test skipped: ${DEFAULT_CACHE} has no libvirt ${LIBVIRT_VERSION} sources (make check-protocol fetches them)`);
});
