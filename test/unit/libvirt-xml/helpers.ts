import { readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const here = dirname(fileURLToPath(import.meta.url));

/** Real `virsh … dumpxml` output captured from libvirt 9.0.0 (Debian 12) for documents built here. */
export function fixture(name: string): string {
  return readFileSync(join(here, 'fixtures', name), 'utf8');
}

export const HOSTILE = `a<b&"c'>`;
export const HOSTILE_MORE = `x</description><devices><disk/></devices><description>y & &amp; &#60; ]]> 'q' "d" é 😀 日本`;
