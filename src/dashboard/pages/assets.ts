/**
 * The dashboard's static files (`/assets/app.js`, `/assets/app.css`): read once from
 * `src/dashboard/assets/` (copied to `dist/dashboard/assets/` by `npm run build`) beside this
 * module — or, in the bundled CLI (`dist/chunks/*.js`, scripts/build-cli.mjs), from
 * `dist/dashboard/assets/` seen from the chunk — kept in memory with a strong ETag. Nothing else is served from disk: the names are a fixed
 * list, so no path from a request reaches the file system.
 */
import { createHash } from 'node:crypto';
import { existsSync, readFileSync } from 'node:fs';

const FILES: Record<string, string> = {
  '/assets/app.js': 'text/javascript; charset=utf-8',
  '/assets/app.css': 'text/css; charset=utf-8',
};

export interface Asset {
  contentType: string;
  body: Buffer;
  etag: string;
}

const cache = new Map<string, Asset>();

/** Where the files are: beside this module (tsc's output, the sources) or beside the bundle's chunks. */
function assetDir(): URL {
  const candidates = [new URL('../assets/', import.meta.url), new URL('../dashboard/assets/', import.meta.url)];
  return candidates.find((u) => existsSync(new URL('app.js', u))) ?? candidates[0]!;
}

export function isAssetPath(path: string): boolean {
  return Object.hasOwn(FILES, path);
}

/** The asset of `path` (one of `isAssetPath`), or undefined. Throws when the build did not copy it (a broken install). */
export function asset(path: string): Asset | undefined {
  if (!isAssetPath(path)) return undefined;
  let a = cache.get(path);
  if (!a) {
    const file = new URL(path.slice('/assets/'.length), assetDir());
    const body = readFileSync(file);
    a = { contentType: FILES[path]!, body, etag: `"${createHash('sha256').update(body).digest('hex').slice(0, 20)}"` };
    cache.set(path, a);
  }
  return a;
}
