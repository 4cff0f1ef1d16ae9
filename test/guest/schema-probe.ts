/**
 * Does the manifest schema (schemas/*.schema.json) have a field? Follows `$ref`s (local and to the
 * other schema files) and looks into oneOf/anyOf/allOf branches, so `Volume spec.source` counts as
 * having `url` when one of its alternatives does.
 */
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';

type Node = Record<string, unknown>;

export class SchemaProbe {
  private readonly files = new Map<string, Node>();
  constructor(dir: string) {
    for (const f of readdirSync(dir).filter((n) => n.endsWith('.json'))) {
      this.files.set(f, JSON.parse(readFileSync(join(dir, f), 'utf8')) as Node);
    }
  }

  private resolve(node: Node, file: string, depth = 0): Array<{ node: Node; file: string }> {
    if (depth > 20) return [];
    const out: Array<{ node: Node; file: string }> = [];
    const ref = node.$ref;
    if (typeof ref === 'string') {
      const [f, pointer] = ref.split('#');
      const target = f ? f : file;
      let cur: unknown = this.files.get(target);
      for (const part of (pointer ?? '').split('/').filter(Boolean)) cur = (cur as Node | undefined)?.[part];
      if (cur && typeof cur === 'object') out.push(...this.resolve(cur as Node, target, depth + 1));
    } else {
      out.push({ node, file });
    }
    for (const k of ['oneOf', 'anyOf', 'allOf']) {
      const alts = node[k];
      if (Array.isArray(alts)) for (const a of alts) if (a && typeof a === 'object') out.push(...this.resolve(a as Node, file, depth + 1));
    }
    return out;
  }

  /** True when `path` (e.g. ['spec', 'source', 'url']) exists below the schema file's root. */
  has(file: string, path: string[]): boolean {
    const root = this.files.get(file);
    if (!root) return false;
    let level = this.resolve(root, file);
    for (const key of path) {
      const next: Array<{ node: Node; file: string }> = [];
      for (const { node, file: f } of level) {
        const props = node.properties as Node | undefined;
        const child = props?.[key];
        if (child && typeof child === 'object') next.push(...this.resolve(child as Node, f));
      }
      if (next.length === 0) return false;
      level = next;
    }
    return true;
  }

  /** The `file:dotted.path` entries of `wanted` the schema lacks. */
  missing(wanted: Array<[string, string[]]>): string[] {
    return wanted.filter(([f, p]) => !this.has(f, p)).map(([f, p]) => `${f}: ${p.join('.')}`);
  }
}
