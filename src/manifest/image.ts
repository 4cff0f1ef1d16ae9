/**
 * What a local image file's header says, read without qemu-img: its virtual size, and whether a
 * qcow2 image names a backing file or an external data file (an image that does could make QEMU,
 * running as root, read host files into a volume, so such images are refused). Used for local
 * `source` files at load time and for downloaded images before they are uploaded.
 */
import { createHash } from 'node:crypto';
import { createReadStream } from 'node:fs';
import { open, stat } from 'node:fs/promises';

export interface ImageHeader {
  format: 'qcow2' | 'raw';
  /** Virtual disk size in bytes (the file size for raw images). */
  virtualSize: number;
  backingFile: boolean;
  externalDataFile: boolean;
}

const QCOW2_MAGIC = 0x514649fb; // "QFI\xfb"
/** qcow2 v3 incompatible feature bit 2: the guest data lives in an external data file. */
const QCOW2_INCOMPAT_DATA_FILE = 1n << 2n;

export async function readImageHeader(path: string, fileSize: number): Promise<ImageHeader> {
  const fh = await open(path, 'r');
  try {
    const buf = Buffer.alloc(104);
    const { bytesRead } = await fh.read(buf, 0, buf.length, 0);
    if (bytesRead < 32 || buf.readUInt32BE(0) !== QCOW2_MAGIC) {
      return { format: 'raw', virtualSize: fileSize, backingFile: false, externalDataFile: false };
    }
    const version = buf.readUInt32BE(4);
    const backingOffset = buf.readBigUInt64BE(8);
    const size = buf.readBigUInt64BE(24);
    const incompatible = version >= 3 && bytesRead >= 80 ? buf.readBigUInt64BE(72) : 0n;
    return {
      format: 'qcow2',
      virtualSize: Number(size),
      backingFile: backingOffset !== 0n,
      externalDataFile: (incompatible & QCOW2_INCOMPAT_DATA_FILE) !== 0n,
    };
  } finally {
    await fh.close();
  }
}

/** What the loader learned of a local `source` file: its content identity and its header. */
export interface LocalImageInfo {
  sha256: string;
  size: number;
  format: 'qcow2' | 'raw';
  virtualSize: number;
}

/**
 * SHA-256 of a file, cached in this process by path, size, mtime and inode (a watcher or a run
 * that loads the folder again does not read an unchanged image twice).
 */
const digestCache = new Map<string, { size: number; mtimeMs: number; ino: number; sha256: string }>();

export async function fileSha256(path: string, st?: { size: number; mtimeMs: number; ino: number }): Promise<string> {
  const s = st ?? (await stat(path));
  const hit = digestCache.get(path);
  if (hit && hit.size === s.size && hit.mtimeMs === s.mtimeMs && hit.ino === s.ino) return hit.sha256;
  const hash = createHash('sha256');
  for await (const chunk of createReadStream(path, { highWaterMark: 1 << 20 })) hash.update(chunk as Buffer);
  const sha256 = hash.digest('hex');
  digestCache.set(path, { size: s.size, mtimeMs: s.mtimeMs, ino: s.ino, sha256 });
  return sha256;
}
