/**
 * XDR (RFC 4506) encoder and decoder: the subset libvirt's RPC protocol uses.
 *
 * Every item is a multiple of 4 bytes, big-endian. Variable-length opaque data and strings are a
 * 4-byte length followed by the bytes, zero-padded to a multiple of 4. An optional value
 * (`type *name`) is a bool followed by the value when true. A variable-length array is a 4-byte
 * count followed by the items. `hyper` is a 64-bit integer; this module reads it as a `bigint`
 * ({@link XdrReader.hyper}) or as a `number` when the value is safe ({@link XdrReader.hyperNumber}).
 */
import { XdrError } from './errors.js';

const INT32_MIN = -0x80000000;
const INT32_MAX = 0x7fffffff;
const UINT32_MAX = 0xffffffff;
const INT64_MIN = -(1n << 63n);
const INT64_MAX = (1n << 63n) - 1n;
const UINT64_MAX = (1n << 64n) - 1n;

function pad(n: number): number {
  return (4 - (n & 3)) & 3;
}

/** Builds an XDR byte string. Grows its buffer as needed. */
export class XdrWriter {
  private buf: Buffer;
  private pos: number;

  /** @param initial initial capacity in bytes
   *  @param reserve bytes left zeroed at the start (e.g. for a packet header written later) */
  constructor(initial = 256, reserve = 0) {
    this.buf = Buffer.allocUnsafe(Math.max(initial, reserve + 16));
    this.buf.fill(0, 0, reserve);
    this.pos = reserve;
  }

  get length(): number {
    return this.pos;
  }

  private ensure(n: number): void {
    const need = this.pos + n;
    if (need <= this.buf.length) return;
    let size = this.buf.length * 2;
    while (size < need) size *= 2;
    const next = Buffer.allocUnsafe(size);
    this.buf.copy(next, 0, 0, this.pos);
    this.buf = next;
  }

  int(v: number): this {
    if (!Number.isInteger(v) || v < INT32_MIN || v > INT32_MAX) throw new XdrError(`int out of range: ${v}`);
    this.ensure(4);
    this.buf.writeInt32BE(v, this.pos);
    this.pos += 4;
    return this;
  }

  uint(v: number): this {
    if (!Number.isInteger(v) || v < 0 || v > UINT32_MAX) throw new XdrError(`unsigned int out of range: ${v}`);
    this.ensure(4);
    this.buf.writeUInt32BE(v, this.pos);
    this.pos += 4;
    return this;
  }

  /** Signed 64-bit. Accepts a bigint or a safe-integer number. */
  hyper(v: bigint | number): this {
    const b = toBigInt(v, 'hyper');
    if (b < INT64_MIN || b > INT64_MAX) throw new XdrError(`hyper out of range: ${b}`);
    this.ensure(8);
    this.buf.writeBigInt64BE(b, this.pos);
    this.pos += 8;
    return this;
  }

  /** Unsigned 64-bit. Accepts a bigint or a safe-integer number. */
  uhyper(v: bigint | number): this {
    const b = toBigInt(v, 'unsigned hyper');
    if (b < 0n || b > UINT64_MAX) throw new XdrError(`unsigned hyper out of range: ${b}`);
    this.ensure(8);
    this.buf.writeBigUInt64BE(b, this.pos);
    this.pos += 8;
    return this;
  }

  bool(v: boolean): this {
    return this.int(v ? 1 : 0);
  }

  /** IEEE 754 single precision. */
  float(v: number): this {
    this.ensure(4);
    this.buf.writeFloatBE(v, this.pos);
    this.pos += 4;
    return this;
  }

  /** IEEE 754 double precision. */
  double(v: number): this {
    this.ensure(8);
    this.buf.writeDoubleBE(v, this.pos);
    this.pos += 8;
    return this;
  }

  /** A UUID in canonical text form (or 32 hex digits), sent as 16 raw bytes. */
  uuid(uuid: string): this {
    return this.raw(uuidToBytes(uuid));
  }

  /** Fixed-length opaque data: exactly `len` bytes, padded. */
  opaqueFixed(data: Uint8Array, len: number): this {
    if (data.length !== len) throw new XdrError(`fixed opaque must be ${len} bytes, got ${data.length}`);
    return this.raw(data);
  }

  /** Variable-length opaque data: length, bytes, padding. */
  opaque(data: Uint8Array, max = UINT32_MAX): this {
    if (data.length > max) throw new XdrError(`opaque longer than its limit ${max}: ${data.length}`);
    this.uint(data.length);
    return this.raw(data);
  }

  /** A string, UTF-8 encoded. */
  string(s: string, max = UINT32_MAX): this {
    if (typeof s !== 'string') throw new XdrError(`expected a string, got ${s === null ? 'null' : typeof s}`);
    const len = Buffer.byteLength(s, 'utf8');
    if (len > max) throw new XdrError(`string longer than its limit ${max}: ${len} bytes`);
    this.uint(len);
    this.ensure(len + 3);
    this.buf.write(s, this.pos, len, 'utf8');
    this.pos += len;
    this.zeros(pad(len));
    return this;
  }

  /** An optional value (`type *name`): false, or true followed by the value. */
  optional<T>(v: T | null | undefined, enc: (w: this, v: T) => void): this {
    if (v === null || v === undefined) return this.bool(false);
    this.bool(true);
    enc(this, v);
    return this;
  }

  /** A variable-length array: count then items. */
  array<T>(items: readonly T[], enc: (w: this, v: T) => void, max = UINT32_MAX): this {
    if (items.length > max) throw new XdrError(`array longer than its limit ${max}: ${items.length}`);
    this.uint(items.length);
    for (const it of items) enc(this, it);
    return this;
  }

  /** A fixed-length array: items only, no count. */
  fixedArray<T>(items: readonly T[], len: number, enc: (w: this, v: T) => void): this {
    if (items.length !== len) throw new XdrError(`fixed array must have ${len} items, got ${items.length}`);
    for (const it of items) enc(this, it);
    return this;
  }

  /** Raw bytes, no length and no padding (stream data). */
  bytes(data: Uint8Array): this {
    this.ensure(data.length);
    this.buf.set(data, this.pos);
    this.pos += data.length;
    return this;
  }

  private raw(data: Uint8Array): this {
    const p = pad(data.length);
    this.ensure(data.length + p);
    this.buf.set(data, this.pos);
    this.pos += data.length;
    return this.zeros(p);
  }

  private zeros(n: number): this {
    for (let i = 0; i < n; i++) this.buf[this.pos++] = 0;
    return this;
  }

  /** The encoded bytes (a view of the internal buffer: do not keep writing after this). */
  finish(): Buffer {
    return this.buf.subarray(0, this.pos);
  }

  /** Overwrites an unsigned int at a given offset (used to patch packet lengths). */
  patchUint(offset: number, v: number): void {
    if (offset + 4 > this.pos) throw new XdrError('patch outside written data');
    this.buf.writeUInt32BE(v, offset);
  }
}

function toBigInt(v: bigint | number, what: string): bigint {
  if (typeof v === 'bigint') return v;
  if (!Number.isSafeInteger(v)) throw new XdrError(`${what} must be an integer (safe as a number, or a bigint): ${v}`);
  return BigInt(v);
}

/** Reads XDR items from a byte string, in order. Throws {@link XdrError} on truncated or invalid data. */
export class XdrReader {
  private readonly buf: Buffer;
  private pos: number;
  private readonly end: number;

  constructor(data: Uint8Array, offset = 0, end = data.length) {
    this.buf = Buffer.isBuffer(data) ? data : Buffer.from(data.buffer, data.byteOffset, data.byteLength);
    this.pos = offset;
    this.end = end;
  }

  get offset(): number {
    return this.pos;
  }

  get remaining(): number {
    return this.end - this.pos;
  }

  private need(n: number, what: string): void {
    if (this.pos + n > this.end) {
      throw new XdrError(`truncated data reading ${what}: need ${n} bytes at offset ${this.pos}, have ${this.end - this.pos}`);
    }
  }

  int(): number {
    this.need(4, 'int');
    const v = this.buf.readInt32BE(this.pos);
    this.pos += 4;
    return v;
  }

  uint(): number {
    this.need(4, 'unsigned int');
    const v = this.buf.readUInt32BE(this.pos);
    this.pos += 4;
    return v;
  }

  float(): number {
    this.need(4, 'float');
    const v = this.buf.readFloatBE(this.pos);
    this.pos += 4;
    return v;
  }

  double(): number {
    this.need(8, 'double');
    const v = this.buf.readDoubleBE(this.pos);
    this.pos += 8;
    return v;
  }

  hyper(): bigint {
    this.need(8, 'hyper');
    const v = this.buf.readBigInt64BE(this.pos);
    this.pos += 8;
    return v;
  }

  uhyper(): bigint {
    this.need(8, 'unsigned hyper');
    const v = this.buf.readBigUInt64BE(this.pos);
    this.pos += 8;
    return v;
  }

  /** A hyper as a number; throws if it is outside the safe-integer range. */
  hyperNumber(): number {
    return safeNumber(this.hyper(), 'hyper');
  }

  /** An unsigned hyper as a number; throws if it is above Number.MAX_SAFE_INTEGER. */
  uhyperNumber(): number {
    return safeNumber(this.uhyper(), 'unsigned hyper');
  }

  bool(): boolean {
    const v = this.int();
    if (v === 0) return false;
    if (v === 1) return true;
    throw new XdrError(`invalid bool value ${v} at offset ${this.pos - 4}`);
  }

  opaqueFixed(len: number): Buffer {
    const p = pad(len);
    this.need(len + p, `fixed opaque[${len}]`);
    const out = Buffer.from(this.buf.subarray(this.pos, this.pos + len));
    this.pos += len + p;
    return out;
  }

  /** `n` raw bytes, no length and no padding (stream data), as a view (not a copy). */
  bytes(n: number = this.remaining): Buffer {
    this.need(n, `${n} raw bytes`);
    const out = this.buf.subarray(this.pos, this.pos + n);
    this.pos += n;
    return out;
  }

  opaque(max = UINT32_MAX): Buffer {
    const len = this.uint();
    if (len > max) throw new XdrError(`opaque length ${len} exceeds its limit ${max}`);
    return this.opaqueFixed(len);
  }

  string(max = UINT32_MAX): string {
    const len = this.uint();
    if (len > max) throw new XdrError(`string length ${len} exceeds its limit ${max}`);
    const p = pad(len);
    this.need(len + p, `string of ${len} bytes`);
    // Decoded in place (no view object per string); invalid UTF-8 becomes U+FFFD, as TextDecoder does.
    const s = this.buf.toString('utf8', this.pos, this.pos + len);
    this.pos += len + p;
    return s;
  }

  /** A 16-byte UUID (fixed opaque, no padding) in its canonical text form, read in place. */
  uuid(): string {
    this.need(UUID_BYTES, 'uuid');
    const s = uuidText(this.buf, this.pos);
    this.pos += UUID_BYTES;
    return s;
  }

  optional<T>(dec: (r: this) => T): T | null {
    return this.bool() ? dec(this) : null;
  }

  array<T>(dec: (r: this) => T, max = UINT32_MAX): T[] {
    const n = this.uint();
    if (n > max) throw new XdrError(`array length ${n} exceeds its limit ${max}`);
    // Every XDR item is at least 4 bytes: reject absurd counts before allocating.
    if (n * 4 > this.remaining) throw new XdrError(`array length ${n} larger than the remaining data`);
    const out: T[] = new Array<T>(n);
    for (let i = 0; i < n; i++) out[i] = dec(this);
    return out;
  }

  fixedArray<T>(len: number, dec: (r: this) => T): T[] {
    const out: T[] = new Array<T>(len);
    for (let i = 0; i < len; i++) out[i] = dec(this);
    return out;
  }

  /** Throws if any bytes are left unread. */
  done(): void {
    if (this.pos !== this.end) throw new XdrError(`${this.end - this.pos} unexpected trailing bytes`);
  }
}

/** A 64-bit value as a number; throws {@link XdrError} when it is not a safe integer. */
export function safeNumber(v: bigint, what: string): number {
  if (v > BigInt(Number.MAX_SAFE_INTEGER) || v < BigInt(Number.MIN_SAFE_INTEGER)) {
    throw new XdrError(`${what} ${v} is not a safe integer; read it as a bigint`);
  }
  return Number(v);
}

// ---------------------------------------------------------------------------------------------
// UUIDs: libvirt sends them as 16 raw bytes; the public API uses the canonical 36-char form.
// ---------------------------------------------------------------------------------------------

export const UUID_BYTES = 16;
const UUID_RE = /^[0-9a-f]{8}-?[0-9a-f]{4}-?[0-9a-f]{4}-?[0-9a-f]{4}-?[0-9a-f]{12}$/i;

const HEX_DIGITS = Buffer.from('0123456789abcdef', 'latin1');
const DASH = 0x2d;
/** Reused for every UUID: its text is copied out by toString, so nothing holds on to it. */
const uuidScratch = Buffer.alloc(36);

/**
 * The 16 bytes at `at` as lower-case canonical text, written into a scratch buffer and read out
 * as one flat string: a list of 1,000 domains decodes 1,000 of these, and the hex-then-slices
 * version made six strings each (measured ~3x slower, counting the Set insert the host adapter does next).
 */
function uuidText(bytes: Uint8Array, at: number): string {
  let o = 0;
  for (let i = 0; i < UUID_BYTES; i++) {
    if (i === 4 || i === 6 || i === 8 || i === 10) uuidScratch[o++] = DASH;
    const v = bytes[at + i]!;
    uuidScratch[o++] = HEX_DIGITS[v >> 4]!;
    uuidScratch[o++] = HEX_DIGITS[v & 15]!;
  }
  return uuidScratch.toString('latin1', 0, 36);
}

export function uuidToString(bytes: Uint8Array): string {
  if (bytes.length !== UUID_BYTES) throw new XdrError(`UUID must be 16 bytes, got ${bytes.length}`);
  return uuidText(bytes, 0);
}

/** Accepts the canonical form (or 32 hex digits without dashes). */
export function uuidToBytes(uuid: string): Buffer {
  if (!UUID_RE.test(uuid)) throw new XdrError(`invalid UUID: ${JSON.stringify(uuid)}`);
  return Buffer.from(uuid.replace(/-/g, ''), 'hex');
}
