/**
 * A small ISO 9660 image writer: one root directory holding a few regular files, with a Joliet
 * supplementary volume descriptor so readers see the names exactly as given (lower case,
 * `user-data`, `meta-data`, `network-config`), which plain ISO 9660 names cannot express (they are
 * upper-case d-characters `A-Z 0-9 _`). Linux's isofs uses the Joliet tree when the image has no
 * Rock Ridge (and libblkid/busybox read the volume label from the primary descriptor), so a
 * NoCloud seed needs nothing more; the primary tree carries ISO 9660 level 2 names (`USER_DATA.;1`)
 * for readers without Joliet.
 *
 * Why hand-written: the seed is built for hosts that are reached through libvirt's RPC stream
 * (the image is uploaded, not built on the target), so building the bytes in-process avoids
 * needing xorriso/genisoimage on the controller and temp files; the npm registry has no
 * maintained ISO 9660 writer (only readers and CLI wrappers). The format subset used here is
 * small and fixed: ECMA-119 volume descriptors, path tables and directory records, plus the
 * Joliet (UCS-2, escape sequence `%/E`) supplementary descriptor. Tests read the result with
 * xorriso and isoinfo, and the tiny guest mounts it with the Linux isofs driver.
 *
 * Output is deterministic: the same files, label and date give the same bytes (the date defaults
 * to the Unix epoch; nothing reads the clock).
 */

export const SECTOR = 2048;

export interface IsoFile {
  /** File name in the root directory, kept exactly in the Joliet tree (e.g. `user-data`). */
  name: string;
  data: Uint8Array | string;
}

export interface IsoOptions {
  /** Volume label (e.g. `cidata`): 1-16 characters of `A-Z a-z 0-9 _ . -`. */
  volumeId: string;
  /** Recorded as the creation/modification date of the volume and every file. Default: epoch. */
  date?: Date;
}

export class IsoError extends Error {
  override name = 'IsoError';
}

// Characters Joliet forbids in identifiers, and the control characters.
// eslint-disable-next-line no-control-regex
const JOLIET_FORBIDDEN = /[\u0000-\u001f\u007f*/:;?\\]/;
const MAX_FILE = 0xffff_ffff; // one extent; the data length field is 32 bits
const enc = new TextEncoder();

/** The image as one byte array. Throws IsoError on a bad name, label or size; builds nothing then. */
export function buildIso9660(files: readonly IsoFile[], opts: IsoOptions): Uint8Array {
  const date = opts.date ?? new Date(0);
  if (Number.isNaN(date.getTime())) throw new IsoError('date is not a valid date');
  const year = date.getUTCFullYear();
  if (year < 1900 || year > 2155) throw new IsoError(`date year ${year} is outside 1900-2155`);
  if (!/^[A-Za-z0-9_.-]{1,16}$/.test(opts.volumeId)) {
    throw new IsoError(`volume id ${JSON.stringify(opts.volumeId)}: use 1-16 characters of A-Z a-z 0-9 _ . -`);
  }

  const entries = files.map((f) => {
    const data = typeof f.data === 'string' ? enc.encode(f.data) : f.data;
    return { name: f.name, data, primary: primaryName(f.name), joliet: jolietName(f.name) };
  });
  const seen = new Map<string, string>();
  for (const e of entries) {
    if (e.data.length > MAX_FILE) throw new IsoError(`${e.name}: ${e.data.length} bytes is over the 4 GiB - 1 limit of one extent`);
    const clash = seen.get(e.primary);
    if (clash !== undefined) {
      throw new IsoError(`${JSON.stringify(clash)} and ${JSON.stringify(e.name)} map to the same ISO 9660 name ${e.primary}`);
    }
    seen.set(e.primary, e.name);
  }

  const primaryOrder = [...entries].sort((a, b) => compareIds([...ascii(a.primary)], [...ascii(b.primary)]));
  const jolietOrder = [...entries].sort((a, b) => compareIds(ucs2Units(a.joliet), ucs2Units(b.joliet)));

  // Layout: 16 system sectors, PVD, SVD, terminator, 4 path tables, 2 root directories, file data.
  const pvdLba = 16;
  const svdLba = 17;
  const termLba = 18;
  const pathLba = { pl: 19, pm: 20, jl: 21, jm: 22 };
  const primaryDirLba = 23;
  const primaryDirSectors = dirSectors(primaryOrder.map((e) => ascii(e.primary).length));
  const jolietDirLba = primaryDirLba + primaryDirSectors;
  const jolietDirSectors = dirSectors(jolietOrder.map((e) => 2 * ucs2Units(e.joliet).length));
  let next = jolietDirLba + jolietDirSectors;
  const extent = new Map<string, number>();
  for (const e of primaryOrder) {
    extent.set(e.name, next);
    next += Math.ceil(e.data.length / SECTOR); // an empty file takes no sector (extent 0 is not used)
  }
  const totalSectors = next;
  const img = new Uint8Array(totalSectors * SECTOR);
  const dt = dirDate(date);

  // Root directories ('.' and '..' both name the root itself).
  const writeDir = (lba: number, sectors: number, list: { id: Uint8Array; e: (typeof entries)[number] }[]): void => {
    const recs: Uint8Array[] = [
      dirRecord(new Uint8Array([0]), lba, sectors * SECTOR, dt, true),
      dirRecord(new Uint8Array([1]), lba, sectors * SECTOR, dt, true),
      ...list.map(({ id, e }) => dirRecord(id, e.data.length === 0 ? 0 : extent.get(e.name)!, e.data.length, dt, false)),
    ];
    let off = lba * SECTOR;
    const end = (lba + sectors) * SECTOR;
    for (const r of recs) {
      // A directory record never crosses a sector boundary: the rest of the sector stays zero.
      if (Math.floor(off / SECTOR) !== Math.floor((off + r.length - 1) / SECTOR)) off = Math.ceil(off / SECTOR) * SECTOR;
      if (off + r.length > end) throw new Error('iso9660: directory layout overflow'); // a bug, not input
      img.set(r, off);
      off += r.length;
    }
  };
  writeDir(primaryDirLba, primaryDirSectors, primaryOrder.map((e) => ({ id: ascii(e.primary), e })));
  writeDir(jolietDirLba, jolietDirSectors, jolietOrder.map((e) => ({ id: ucs2(e.joliet), e })));

  for (const e of entries) if (e.data.length > 0) img.set(e.data, extent.get(e.name)! * SECTOR);

  // Path tables: only the root (identifier 0x00, parent 1).
  const pathTable = (lba: number, bigEndian: boolean): Uint8Array => {
    const t = new Uint8Array(10);
    const v = new DataView(t.buffer);
    t[0] = 1;
    v.setUint32(2, lba, !bigEndian);
    v.setUint16(6, 1, !bigEndian);
    return t;
  };
  img.set(pathTable(primaryDirLba, false), pathLba.pl * SECTOR);
  img.set(pathTable(primaryDirLba, true), pathLba.pm * SECTOR);
  img.set(pathTable(jolietDirLba, false), pathLba.jl * SECTOR);
  img.set(pathTable(jolietDirLba, true), pathLba.jm * SECTOR);

  const vd = (type: 1 | 2, rootLba: number, rootSectors: number, pl: number, pm: number): Uint8Array => {
    const d = new Uint8Array(SECTOR);
    const joliet = type === 2;
    const text = (off: number, len: number, s: string): void => d.set(joliet ? ucs2Field(s, len) : asciiField(s, len), off);
    d[0] = type;
    d.set(ascii('CD001'), 1);
    d[6] = 1;
    text(8, 32, ''); // system identifier
    text(40, 32, opts.volumeId);
    both32(d, 80, totalSectors);
    if (joliet) d.set([0x25, 0x2f, 0x45], 88); // UCS-2 level 3
    both16(d, 120, 1); // volume set size
    both16(d, 124, 1); // volume sequence number
    both16(d, 128, SECTOR);
    both32(d, 132, 10); // path table size
    new DataView(d.buffer).setUint32(140, pl, true);
    new DataView(d.buffer).setUint32(148, pm, false);
    d.set(dirRecord(new Uint8Array([0]), rootLba, rootSectors * SECTOR, dt, true), 156);
    text(190, 128, ''); // volume set
    text(318, 128, ''); // publisher
    text(446, 128, ''); // data preparer
    text(574, 128, 'VIRTFORM'); // application
    text(702, 37, ''); // copyright file
    text(739, 37, ''); // abstract file
    text(776, 37, ''); // bibliographic file
    d.set(vdDate(date), 813); // creation
    d.set(vdDate(date), 830); // modification
    d.set(vdDate(null), 847); // expiration: not specified
    d.set(vdDate(null), 864); // effective: not specified
    d[881] = 1; // file structure version
    return d;
  };
  img.set(vd(1, primaryDirLba, primaryDirSectors, pathLba.pl, pathLba.pm), pvdLba * SECTOR);
  img.set(vd(2, jolietDirLba, jolietDirSectors, pathLba.jl, pathLba.jm), svdLba * SECTOR);
  const term = new Uint8Array(SECTOR);
  term[0] = 255;
  term.set(ascii('CD001'), 1);
  term[6] = 1;
  img.set(term, termLba * SECTOR);
  return img;
}

/** ISO 9660 level 2 name: upper-case d-characters, `NAME.EXT;1`, at most 30 characters before `;1`. */
export function primaryName(name: string): string {
  jolietName(name); // the same validation for both trees
  const dot = name.lastIndexOf('.');
  const [base, ext] = dot > 0 ? [name.slice(0, dot), name.slice(dot + 1)] : [name, ''];
  const d = (s: string): string => s.toUpperCase().replace(/[^A-Z0-9_]/g, '_');
  let b = d(base);
  let x = d(ext);
  if (x.length > 8) x = x.slice(0, 8);
  if (b.length + x.length > 30) b = b.slice(0, 30 - x.length);
  return `${b}.${x};1`;
}

/** Joliet identifier: the name itself plus version `;1`. Throws IsoError when it cannot be stored. */
export function jolietName(name: string): string {
  if (name.length === 0) throw new IsoError('a file name is empty');
  if (name === '.' || name === '..') throw new IsoError(`file name ${JSON.stringify(name)} is reserved`);
  if (JOLIET_FORBIDDEN.test(name)) {
    throw new IsoError(`file name ${JSON.stringify(name)}: control characters and * / : ; ? \\ are not allowed`);
  }
  for (const ch of name) {
    if (ch.codePointAt(0)! > 0xffff) throw new IsoError(`file name ${JSON.stringify(name)}: characters outside the BMP cannot be stored in Joliet (UCS-2)`);
  }
  if (name.length > 62) throw new IsoError(`file name ${JSON.stringify(name)} is over 62 characters (the Joliet limit with ";1")`);
  return `${name};1`;
}

function dirSectors(idLengths: number[]): number {
  let off = 34 + 34; // '.' and '..'
  let sectors = 1;
  for (const n of idLengths) {
    const len = 33 + n + (n % 2 === 0 ? 1 : 0);
    if (off + len > sectors * SECTOR) {
      off = sectors * SECTOR;
      sectors++;
    }
    off += len;
  }
  return sectors;
}

function dirRecord(id: Uint8Array, lba: number, size: number, dt: Uint8Array, dir: boolean): Uint8Array {
  const len = 33 + id.length + (id.length % 2 === 0 ? 1 : 0);
  const r = new Uint8Array(len);
  r[0] = len;
  both32(r, 2, lba);
  both32(r, 10, size);
  r.set(dt, 18);
  r[25] = dir ? 0x02 : 0x00;
  both16(r, 28, 1);
  r[32] = id.length;
  r.set(id, 33);
  return r;
}

/** Ordering of ECMA-119 9.3: name part, then extension, each compared as if padded (with spaces). */
function compareIds(a: number[], b: number[]): number {
  const split = (u: number[]): [number[], number[]] => {
    const semi = u.indexOf(0x3b);
    const body = semi >= 0 ? u.slice(0, semi) : u;
    const dot = body.lastIndexOf(0x2e);
    return dot >= 0 ? [body.slice(0, dot), body.slice(dot + 1)] : [body, []];
  };
  const cmp = (x: number[], y: number[]): number => {
    for (let i = 0; i < Math.max(x.length, y.length); i++) {
      const d = (x[i] ?? 0x20) - (y[i] ?? 0x20);
      if (d !== 0) return d;
    }
    return 0;
  };
  const [an, ax] = split(a);
  const [bn, bx] = split(b);
  return cmp(an, bn) || cmp(ax, bx);
}

function both16(b: Uint8Array, off: number, v: number): void {
  const dv = new DataView(b.buffer, b.byteOffset, b.byteLength);
  dv.setUint16(off, v, true);
  dv.setUint16(off + 2, v, false);
}

function both32(b: Uint8Array, off: number, v: number): void {
  const dv = new DataView(b.buffer, b.byteOffset, b.byteLength);
  dv.setUint32(off, v, true);
  dv.setUint32(off + 4, v, false);
}

function ascii(s: string): Uint8Array {
  return Uint8Array.from(s, (c) => c.charCodeAt(0));
}

function ucs2Units(s: string): number[] {
  return Array.from({ length: s.length }, (_, i) => s.charCodeAt(i));
}

function ucs2(s: string): Uint8Array {
  const out = new Uint8Array(s.length * 2);
  for (let i = 0; i < s.length; i++) {
    out[2 * i] = s.charCodeAt(i) >> 8;
    out[2 * i + 1] = s.charCodeAt(i) & 0xff;
  }
  return out;
}

function asciiField(s: string, len: number): Uint8Array {
  const out = new Uint8Array(len).fill(0x20);
  out.set(ascii(s.slice(0, len)));
  return out;
}

/** UCS-2 big-endian text padded with UCS-2 spaces; an odd-length field ends with a zero byte. */
function ucs2Field(s: string, len: number): Uint8Array {
  const out = new Uint8Array(len);
  for (let i = 0; i + 1 < len; i += 2) out[i + 1] = 0x20;
  out.set(ucs2(s.slice(0, Math.floor(len / 2))));
  return out;
}

/** 7-byte directory record date (years since 1900, month, day, h, m, s, GMT offset 0). */
function dirDate(d: Date): Uint8Array {
  return new Uint8Array([d.getUTCFullYear() - 1900, d.getUTCMonth() + 1, d.getUTCDate(), d.getUTCHours(), d.getUTCMinutes(), d.getUTCSeconds(), 0]);
}

/** 17-byte volume descriptor date `YYYYMMDDHHMMSScc` + GMT offset; null = not specified. */
function vdDate(d: Date | null): Uint8Array {
  const out = new Uint8Array(17);
  if (d === null) {
    out.set(ascii('0000000000000000'));
    return out;
  }
  const p = (n: number, w: number): string => String(n).padStart(w, '0');
  const s =
    p(d.getUTCFullYear(), 4) +
    p(d.getUTCMonth() + 1, 2) +
    p(d.getUTCDate(), 2) +
    p(d.getUTCHours(), 2) +
    p(d.getUTCMinutes(), 2) +
    p(d.getUTCSeconds(), 2) +
    p(Math.floor(d.getUTCMilliseconds() / 10), 2);
  out.set(ascii(s));
  return out;
}
