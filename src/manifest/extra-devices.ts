/**
 * VirtualMachine `spec.extraDevices`: the escape hatch for devices virtform does not model, checked
 * at load time (validate, reconcile, every `--git` commit), each problem at its list item:
 *
 *   - well-formed XML (fast-xml-parser's validator, with the line and column inside the fragment),
 *     exactly one element, no DOCTYPE, processing instruction, custom entity or namespace
 *     (`qemu:commandline` and other namespaced extensions are refused whatever the policy);
 *   - the element is in the allowlist (`EXTRA_DEVICE_ELEMENTS`); one virtform models (disk,
 *     interface, graphics, ...) or that collides with what it defines (serial port 0, the guest
 *     agent channel, the PS/2 input devices) is refused naming the field to use;
 *   - **deny by default what reaches the host**: `filesystem`, `hostdev`, `smartcard` need the
 *     policy's `extraDevices.hostElements`; every host path a fragment names (a source's
 *     path/file/dir/dev/socket, a log file, an rng device) must lie in the policy's
 *     `allowedRoots.extraDeviceSources` (symlinks resolved); tcp/udp character devices need
 *     `extraDevices.networkChardevs: true`. Without a policy file all of these are refused, and the
 *     message names the policy key that would allow it.
 *
 * libvirt checks the rest when virtform defines the domain (VIR_DOMAIN_DEFINE_VALIDATE: its RNG
 * schema over the whole definition).
 */
import { readFileSync } from 'node:fs';
import { isAbsolute, posix } from 'node:path';
import {
  EXTRA_DEVICE_ELEMENTS, MODELLED_DEVICE_ELEMENTS, hostReachOf, implicitDevice, parseFragment,
} from '../libvirt/xml/extra-devices.js';
import type { FieldPath, ManifestError } from './errors.js';
import { quote } from './errors.js';
import { realPathOf, within, type Policy } from './policy.js';
import { Reporter, specOf, type Entry } from './semantics.js';
import { locate, type Position } from './yaml-source.js';
import { yamlLib } from '../util/yaml-lib.js';

/** Check every VM's `spec.extraDevices` (with or without a policy: deny by default). */
export function checkExtraDevices(entries: readonly Entry[], policy: Policy | undefined): ManifestError[] {
  const r = new Reporter();
  const from = policy ? `(policy ${policy.file})` : '(no policy file: denied by default; see --policy)';
  for (const e of entries) {
    if (!e.valid || e.kind !== 'VirtualMachine') continue;
    const list = specOf(e, 'VirtualMachine').extraDevices ?? [];
    list.forEach((xml, i) => {
      const at: FieldPath = ['spec', 'extraDevices', i];
      const parsed = parseFragment(xml);
      if (!parsed.ok) {
        const where = parsed.line !== undefined ? ` (line ${parsed.line}, column ${parsed.col ?? 1} of the fragment)` : '';
        const pos = parsed.line !== undefined ? inFile(e, at, parsed.line, parsed.col ?? 1) : undefined;
        if (pos) r.errors.push({ file: e.sd.file, ...pos, kind: e.kind, ...(e.name ? { name: e.name } : {}), field: `spec.extraDevices[${i}]`, message: `${parsed.message}${where}` });
        else r.at(e, at, `${parsed.message}${where}`);
        return;
      }
      const f = parsed.frag;
      const modelled = MODELLED_DEVICE_ELEMENTS[f.name];
      if (modelled !== undefined) {
        r.at(e, at, `<${f.name}> cannot be an extra device: ${modelled}`);
        return;
      }
      if (!EXTRA_DEVICE_ELEMENTS.includes(f.name)) {
        r.at(e, at, `<${f.name}> is not an allowed extra device; allowed: ${EXTRA_DEVICE_ELEMENTS.join(', ')}`);
        return;
      }
      const implicit = implicitDevice(f);
      if (implicit !== undefined) {
        r.at(e, at, `this <${f.name}> collides with a device virtform or libvirt defines: ${implicit}`);
        return;
      }
      const reach = hostReachOf(f);
      for (const el of reach.elements) {
        if (policy?.extraDevices?.hostElements.includes(el)) continue;
        r.at(e, at, `<${el}> gives the guest part of the host and is denied by default: the policy's extraDevices.hostElements must list ${el} ${from}`);
      }
      if (reach.network.length > 0 && !policy?.extraDevices?.networkChardevs) {
        r.at(e, at, `${reach.network.join(', ')} opens a network socket on the host and is denied by default: set extraDevices.networkChardevs: true in the policy ${from}`);
      }
      const roots = policy?.roots.extraDeviceSources ?? [];
      for (const p of reach.paths) {
        if (!isAbsolute(p.path)) {
          r.at(e, at, `host path ${quote(p.path, 512)} at ${p.where} must be absolute`);
          continue;
        }
        const abs = posix.normalize(p.path);
        const real = realPathOf(abs);
        if (roots.some((root) => within(real, root.real))) continue;
        const via = real !== abs ? ` (resolves to ${quote(real, 512)})` : '';
        r.at(e, at, `host path ${quote(abs, 512)}${via} at ${p.where} is outside the allowed roots and denied by default: ` +
          `allowedRoots.extraDeviceSources allows ${roots.length ? roots.map((x) => x.given).join(', ') : 'none'} ${from}`);
      }
    });
  }
  return r.errors;
}

/**
 * Where line `line`, column `col` of a fragment is in the manifest file, when the YAML scalar shows
 * it as written: a literal block (`|`: its lines are the file's lines after the header, at the
 * block's indentation) or a one-line plain or quoted scalar with nothing escaped. Else undefined
 * (the error then points at the list item).
 */
function inFile(e: Entry, at: FieldPath, line: number, col: number): Position | undefined {
  const node = e.sd.doc.getIn(at, true);
  if (!yamlLib().isScalar(node) || !node.range || typeof node.value !== 'string') return undefined;
  const start = locate(e.sd, at);
  const value = node.value;
  if (node.type === 'BLOCK_LITERAL') {
    let text: string;
    try {
      text = readFileSync(e.sd.file, 'utf8');
    } catch {
      // safe-catch: only a finer error position is lost; the error itself is reported at the list item
      return undefined; // read a moment ago by the loader; without it the error points at the item
    }
    const lines = text.split(/\r?\n/);
    const header = (lines[start.line - 1] ?? '').slice(start.col - 1);
    if (!/^\|[+-]?(\s|#|$)/.test(header)) return undefined; // an explicit indentation indicator: not worth it
    const first = lines.slice(start.line).find((l) => l.trim() !== '');
    if (first === undefined) return undefined;
    return { line: start.line + line, col: first.length - first.trimStart().length + col };
  }
  if (line !== 1 || value.includes('\n') || e.sd.lineCounter.linePos(node.range[1]).line !== start.line) return undefined;
  if (node.type === 'PLAIN') return { line: start.line, col: start.col + col - 1 };
  if (node.type === 'QUOTE_SINGLE' && !value.includes("'")) return { line: start.line, col: start.col + col };
  if (node.type === 'QUOTE_DOUBLE' && !/["\\\u0000-\u001f\u007f-\uffff]/.test(value)) return { line: start.line, col: start.col + col };
  return undefined;
}
