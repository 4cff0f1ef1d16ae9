/**
 * Objects made with virsh, as another tool would make them (the export tests): define from XML
 * through a temporary file, and a definition without virtform's owner marker (what adoption may
 * add and nothing else).
 */
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { virsh } from './virsh.js';

/** A definition without its `<metadata>` element (where adoption writes the owner marker). */
export const withoutMarker = (xml: string): string => xml.replace(/\s*<metadata>[\s\S]*?<\/metadata>/, '');

/** `virsh define|net-define|pool-define` of `xml`, written to a file in `dir`. */
export function defineFromXml(dir: string, kind: 'define' | 'net-define' | 'pool-define', xml: string): void {
  const f = join(dir, `${kind}-${Math.random().toString(36).slice(2)}.xml`);
  writeFileSync(f, xml);
  virsh(kind, f);
}
