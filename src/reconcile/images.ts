/**
 * Images imported into volumes (`spec.source`): downloading `{url, sha256}` sources into a cache
 * keyed by sha256, and reading a local or cached image file while checking its digest.
 *
 * Decision: a URL image is downloaded to a cache file first (`<cache>/<sha256>`, under the state
 * DB's folder: `<db dir>/images/`), hashed while it is written, and only renamed to its final
 * name once the digest matched. The volume is created only after that, and the bytes are then
 * streamed from the cache file into it through libvirt's upload stream. So:
 *   - a wrong checksum, a 404 or a download cut short never creates a volume, and leaves no file
 *     (the partial `<sha256>.part.*` file is removed; one left by a SIGKILL is removed by the next
 *     run of that image and by {@link ImageCache.prune});
 *   - the image's header (format, virtual size, backing or data file) is judged on the whole,
 *     verified file before anything touches the host;
 *   - a rerun after an interrupted upload, and every other volume with the same sha256, use the
 *     cached file instead of downloading again;
 *   - the cost is the image's size once more on the virtform machine's disk; images no declared
 *     volume names any more are pruned after an apply.
 * Credentials in a URL (`user:pass@`) are sent as basic auth and never appear in a message.
 */
import { createHash, randomBytes } from 'node:crypto';
import { createReadStream, createWriteStream } from 'node:fs';
import { mkdir, readdir, rename, rm, stat } from 'node:fs/promises';
import http, { type IncomingMessage } from 'node:http';
import https from 'node:https';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { pipeline } from 'node:stream/promises';
import { Transform } from 'node:stream';
import { readImageHeader, type ImageHeader } from '../manifest/image.js';
import { hostAllowed } from '../manifest/policy.js';
import { HostError } from './ports.js';


/** readdir's failure for a cache folder that does not exist yet: no files. Any other error is thrown. */
function noFolderIsEmpty(e: NodeJS.ErrnoException): string[] {
  if (e.code === 'ENOENT') return [];
  throw e;
}

export interface ImageProgress {
  /** `copy`, `verify`: a volume moved between hosts (sent to the target; read back from it). */
  phase: 'download' | 'upload' | 'copy' | 'verify';
  bytes: number;
  /** Total bytes when known (Content-Length, or the file size). */
  total?: number;
}

export interface CachedImage {
  path: string;
  sha256: string;
  size: number;
  header: ImageHeader;
  /** Whether this call downloaded it (false: it was in the cache). */
  downloaded: boolean;
}

/** What a download may reach (the policy's `urlHosts`): checked for every redirect target before it is requested. */
export interface UrlRules {
  /** Hosts allowed (`*.example.org` patterns); absent: any host. */
  urlHosts?: readonly string[];
  /** The policy file, for messages. */
  policyFile?: string;
}

export interface ImageCacheOptions {
  /** No connection, response or data for this long fails the download (default 30 s). */
  timeoutMs?: number;
  /** Redirects followed (default 5). */
  maxRedirects?: number;
}

/** A URL as it may be shown: without user and password. */
export function redactUrl(url: string): string {
  try {
    const u = new URL(url);
    if (!u.username && !u.password) return u.toString();
    u.username = '';
    u.password = '';
    return u.toString().replace('://', '://***@');
  } catch { // safe-catch: not a URL the parser takes: redacted by pattern instead
    return url.replace(/\/\/[^/@\s]*@/, '//***@');
  }
}

const TLS_CODES = new Set([
  'DEPTH_ZERO_SELF_SIGNED_CERT', 'SELF_SIGNED_CERT_IN_CHAIN', 'UNABLE_TO_VERIFY_LEAF_SIGNATURE', 'UNABLE_TO_GET_ISSUER_CERT',
  'UNABLE_TO_GET_ISSUER_CERT_LOCALLY', 'CERT_HAS_EXPIRED', 'CERT_NOT_YET_VALID', 'ERR_TLS_CERT_ALTNAME_INVALID', 'CERT_UNTRUSTED',
  'CERT_SIGNATURE_FAILURE', 'CERT_REVOKED', 'EPROTO', 'ERR_SSL_WRONG_VERSION_NUMBER',
]);

/** A download error, worded for the user; TLS problems and HTTP 4xx are not worth retrying. */
function downloadError(shown: string, e: unknown): HostError {
  if (e instanceof HostError) return e;
  const err = e as NodeJS.ErrnoException;
  const code = err.code ?? '';
  if (TLS_CODES.has(code) || /certificate|ssl|tls/i.test(err.message)) {
    return new HostError('invalid', `downloading ${shown}: TLS error: ${err.message}${code && !err.message.includes(code) ? ` (${code})` : ''}; ` +
      'a server with a certificate of a private CA is trusted by starting virtform with NODE_EXTRA_CA_CERTS=/path/to/ca.pem');
  }
  return new HostError('operation-failed', `downloading ${shown}: ${err.message}${code && !err.message.includes(code) ? ` (${code})` : ''}`);
}

export class ImageCache {
  readonly timeoutMs: number;
  readonly maxRedirects: number;
  private readonly inflight = new Map<string, Promise<CachedImage>>();

  constructor(readonly dir: string, opts: ImageCacheOptions = {}) {
    this.timeoutMs = opts.timeoutMs ?? 30_000;
    this.maxRedirects = opts.maxRedirects ?? 5;
  }

  /** The verified image of `sha256`: from the cache, else downloaded from `url` (one download per image at a time). */
  fetch(url: string, sha256: string, onProgress?: (p: ImageProgress) => void, maxBytes?: number, rules: UrlRules = {}): Promise<CachedImage> {
    const key = sha256.toLowerCase();
    const running = this.inflight.get(key);
    if (running) return running.then((img) => ({ ...img, downloaded: false }));
    const p = this.fetchOnce(url, key, onProgress, maxBytes, rules).finally(() => this.inflight.delete(key));
    this.inflight.set(key, p);
    return p;
  }

  /** The cached, verified image of `sha256` when it is there (no download). */
  async cached(sha256: string): Promise<CachedImage | undefined> {
    const final = join(this.dir, sha256.toLowerCase());
    // safe-catch: not cached (ENOENT), or a cache that cannot be read: then the download path decides
    const have = await stat(final).catch(() => undefined);
    if (!have?.isFile()) return undefined;
    return { path: final, sha256, size: have.size, header: await readImageHeader(final, have.size), downloaded: false };
  }

  private async fetchOnce(url: string, sha256: string, onProgress?: (p: ImageProgress) => void, maxBytes?: number, rules: UrlRules = {}): Promise<CachedImage> {
    const final = join(this.dir, sha256);
    // safe-catch: not cached yet (ENOENT); a cache folder that cannot be used fails the mkdir/download below
    const have = await stat(final).catch(() => undefined);
    if (have?.isFile()) return { path: final, sha256, size: have.size, header: await readImageHeader(final, have.size), downloaded: false };
    await mkdir(this.dir, { recursive: true, mode: 0o700 });
    await this.removeParts(sha256);
    const part = join(this.dir, `${sha256}.part.${process.pid}.${randomBytes(4).toString('hex')}`);
    const shown = redactUrl(url);
    try {
      const res = await this.get(new URL(url), shown, rules);
      const length = Number(res.headers['content-length']);
      const total = Number.isFinite(length) && length >= 0 ? length : undefined;
      if (maxBytes !== undefined && total !== undefined && total > maxBytes) {
        res.destroy();
        throw new HostError('invalid', `downloading ${shown}: the image is ${total} bytes, more than the volume can hold (${maxBytes} bytes at most)`);
      }
      const hash = createHash('sha256');
      let bytes = 0;
      let lastReport = 0;
      const counter = new Transform({
        transform(chunk: Buffer, _enc, done) {
          bytes += chunk.length;
          if (maxBytes !== undefined && bytes > maxBytes) {
            done(new HostError('invalid', `downloading ${shown}: more than ${maxBytes} bytes, more than the volume can hold`));
            return;
          }
          hash.update(chunk);
          const now = Date.now();
          if (now - lastReport >= 200) {
            lastReport = now;
            onProgress?.({ phase: 'download', bytes, total });
          }
          done(null, chunk);
        },
      });
      await pipeline(res, counter, createWriteStream(part, { mode: 0o600 }));
      onProgress?.({ phase: 'download', bytes, total });
      if (total !== undefined && bytes !== total) {
        throw new HostError('operation-failed', `downloading ${shown}: the connection closed after ${bytes} of ${total} bytes`);
      }
      const got = hash.digest('hex');
      if (got !== sha256) {
        throw new HostError('invalid', `downloading ${shown}: checksum mismatch: sha256 of the ${bytes} bytes received is ${got}, the manifest says ${sha256}`);
      }
      await rename(part, final);
      return { path: final, sha256, size: bytes, header: await readImageHeader(final, bytes), downloaded: true };
    } catch (e) {
      await rm(part, { force: true });
      throw downloadError(shown, e);
    }
  }

  /** GET with redirects (http and https only), a timeout for connecting, the response and every read. */
  private get(url: URL, shown: string, rules: UrlRules, redirects = 0): Promise<IncomingMessage> {
    return new Promise((resolve, reject) => {
      let response: IncomingMessage | undefined;
      if (url.protocol !== 'http:' && url.protocol !== 'https:') {
        reject(new HostError('invalid', `downloading ${shown}: redirected to ${redactUrl(url.toString())}: only http and https are supported`));
        return;
      }
      const lib = url.protocol === 'https:' ? https : http;
      const req = lib.get(url, { headers: { 'user-agent': 'virtform', accept: '*/*' } }, (res) => {
        const status = res.statusCode ?? 0;
        if (status >= 300 && status < 400 && res.headers.location) {
          res.resume();
          if (redirects >= this.maxRedirects) {
            reject(new HostError('invalid', `downloading ${shown}: more than ${this.maxRedirects} redirects`));
            return;
          }
          // A redirect elsewhere does not carry the credentials of the first URL.
          let next: URL;
          try {
            next = new URL(res.headers.location, url);
          } catch {
            // safe-catch: the parse error's text adds nothing to "an invalid URL", which is reported
            reject(new HostError('invalid', `downloading ${shown}: redirected by ${redactUrl(url.toString())} to an invalid URL`));
            return;
          }
          if (next.origin !== url.origin) { next.username = ''; next.password = ''; }
          else if (!next.username && url.username) { next.username = url.username; next.password = url.password; }
          // The policy is checked where the bytes come from: every target, before it is requested.
          const refused = redirectRefusal(url, next, rules);
          if (refused) {
            reject(new HostError('invalid', `downloading ${shown}: ${redactUrl(url.toString())} redirected to ${redactUrl(next.toString())}: refused: ${refused}`));
            return;
          }
          this.get(next, shown, rules, redirects + 1).then(resolve, reject);
          return;
        }
        if (status !== 200) {
          res.resume();
          const where = redirects > 0 ? ` (after ${redirects} redirect(s), at ${redactUrl(url.toString())})` : '';
          reject(new HostError(status >= 400 && status < 500 ? 'invalid' : 'operation-failed',
            `downloading ${shown}: HTTP ${status} ${res.statusMessage ?? ''}`.trimEnd() + where));
          return;
        }
        res.on('error', () => undefined); // reported through the pipeline
        response = res;
        resolve(res);
      });
      req.setTimeout(this.timeoutMs, () => {
        const err = Object.assign(new Error(`timed out: no answer or data for ${this.timeoutMs / 1000}s`), { code: 'ETIMEDOUT' });
        // Once the body flows, the error must reach the response stream (the pipeline reads it).
        if (response) response.destroy(err);
        req.destroy(err);
      });
      req.on('error', (e) => reject(downloadError(shown, e)));
    });
  }

  private async removeParts(sha256: string): Promise<void> {
    const names = await readdir(this.dir).catch(noFolderIsEmpty);
    await Promise.all(names.filter((n) => n.startsWith(`${sha256}.part.`)).map((n) => rm(join(this.dir, n), { force: true })));
  }

  /** Remove cached images (and partial downloads) whose sha256 is not in `keep`. */
  async prune(keep: Set<string>): Promise<string[]> {
    const names = await readdir(this.dir).catch(noFolderIsEmpty);
    const removed: string[] = [];
    for (const n of names) {
      const convert = /^convert\.(\d+)\./.exec(n);
      if (convert) {
        // A converted copy left by a killed run (never one of a live process).
        if (!pidAlive(Number(convert[1]))) await rm(join(this.dir, n), { force: true });
        continue;
      }
      const sha = n.slice(0, 64);
      if (!/^[0-9a-f]{64}/.test(n) || (keep.has(sha) && n === sha)) continue;
      if (keep.has(sha) && this.inflight.has(sha)) continue;
      await rm(join(this.dir, n), { force: true });
      removed.push(n);
    }
    return removed;
  }
}

/** Why a redirect from `from` to `to` may not be followed (undefined: it may). */
export function redirectRefusal(from: URL, to: URL, rules: UrlRules): string | undefined {
  if (to.protocol !== 'http:' && to.protocol !== 'https:') return `only http and https are supported, not ${to.protocol.replace(/:$/, '')}`;
  if (from.protocol === 'https:' && to.protocol === 'http:') return 'a redirect from https to http is not followed (downgrade)';
  if (rules.urlHosts && !hostAllowed(to.hostname, rules.urlHosts)) {
    const list = rules.urlHosts.length ? rules.urlHosts.join(', ') : 'none';
    return `host ${JSON.stringify(to.hostname)} is not allowed: urlHosts allows ${list}${rules.policyFile ? ` (policy ${rules.policyFile})` : ''}`;
  }
  return undefined;
}

function pidAlive(pid: number): boolean {
  if (pid === process.pid) return true;
  try {
    process.kill(pid, 0);
    return true;
  } catch (e) {
    return (e as NodeJS.ErrnoException).code === 'EPERM';
  }
}

/** The image cache in a data dir (`--data-dir`, by default the SQLite DB's folder): `images/` in it; none given: a temp-dir cache. */
export function imageCacheFor(dataDir: string | undefined, opts: ImageCacheOptions = {}): ImageCache {
  if (!dataDir) return new ImageCache(defaultImageCache().dir, opts);
  return new ImageCache(join(dataDir, 'images'), opts);
}

/** The cache used when none is given (tests, library use): a folder in the temp dir. */
export function defaultImageCache(): ImageCache {
  return new ImageCache(join(tmpdir(), `virtform-images-${process.getuid?.() ?? 'user'}`));
}

/**
 * The bytes of `path`, for an upload: read in 1 MiB chunks, hashed on the way; when `sha256` is
 * given and the file's digest differs at the end (the file changed since it was planned), the
 * iteration throws, so the upload fails and the volume is deleted.
 */
export async function* verifiedFileBytes(path: string, sha256: string | undefined, onBytes?: (n: number) => void): AsyncIterable<Uint8Array> {
  const hash = createHash('sha256');
  let n = 0;
  for await (const chunk of createReadStream(path, { highWaterMark: 1 << 20 })) {
    const b = chunk as Buffer;
    hash.update(b);
    n += b.length;
    onBytes?.(n);
    yield b;
  }
  const got = hash.digest('hex');
  if (sha256 !== undefined && got !== sha256) {
    throw new HostError('invalid', `image ${path} changed since it was read: its sha256 is now ${got}, expected ${sha256}`, undefined, 'image-changed');
  }
}
