import { describe, expect, it } from 'vitest';
import { decodeEntities, escapeAttr, escapeText, LibvirtXmlError } from '../../../src/libvirt/xml/index.js';
import { parseRoot, scaledBytes, child, unitFactor } from '../../../src/libvirt/xml/xml-util.js';
import { HOSTILE, HOSTILE_MORE } from './helpers.js';

describe('escaping', () => {
  it('escapes markup characters in text and attributes', () => {
    expect(escapeText(HOSTILE)).toBe('a&lt;b&amp;&quot;c&apos;&gt;');
    expect(escapeAttr(HOSTILE)).toBe('a&lt;b&amp;&quot;c&apos;&gt;');
  });

  it('writes CR as a reference in text, and CR/LF/TAB as references in attributes', () => {
    expect(escapeText('a\r\n\tb')).toBe('a&#13;\n\tb');
    expect(escapeAttr('a\r\n\tb')).toBe('a&#13;&#10;&#9;b');
  });

  it('rejects characters XML 1.0 cannot carry', () => {
    expect(() => escapeText('a\u0001b')).toThrow(LibvirtXmlError);
    expect(() => escapeAttr('a\u0000')).toThrow(/U\+0000/);
    expect(() => escapeText('lone \uD800 surrogate')).toThrow(LibvirtXmlError);
    expect(escapeText('pair 😀')).toBe('pair 😀');
  });

  it('decodes entities in one pass (no double decoding)', () => {
    expect(decodeEntities('&amp;lt; &lt; &#60; &#x3C; &#xE9; &#x1F600; &apos;&quot;&gt;')).toBe("&lt; < < < é 😀 '\">");
    expect(decodeEntities(escapeText(HOSTILE_MORE))).toBe(HOSTILE_MORE);
    expect(decodeEntities(escapeAttr(HOSTILE_MORE + '\r\n\t'))).toBe(HOSTILE_MORE + '\r\n\t');
  });
});

describe('parseRoot', () => {
  it('rejects malformed XML and unexpected roots', () => {
    expect(() => parseRoot('<domain><name>x</domain>', 'domain')).toThrow(/malformed/);
    expect(() => parseRoot('', 'domain')).toThrow(LibvirtXmlError);
    expect(() => parseRoot('<network><name>x</name></network>', 'domain')).toThrow(/expected a <domain>/);
  });

  it('does not expand DOCTYPE entities (left as literal text)', () => {
    const xml = '<!DOCTYPE pool [<!ENTITY e "EXPANDED">]><pool><name>&e;</name></pool>';
    const root = parseRoot(xml, 'pool');
    expect(child(root, 'name')?.['#text']).toBe('&e;');
  });

  it('normalizes raw CR line ends like an XML parser, keeps &#13;', () => {
    const root = parseRoot('<pool><name>a\r\nb\rc&#13;d</name></pool>', 'pool');
    expect(child(root, 'name')?.['#text']).toBe('a\nb\nc\rd');
  });
});

describe('units', () => {
  it('scales libvirt units to bytes', () => {
    expect(unitFactor('bytes', 'KiB')).toBe(1n);
    expect(unitFactor('b', 'KiB')).toBe(1n);
    expect(unitFactor(undefined, 'KiB')).toBe(1024n);
    expect(unitFactor(undefined, 'bytes')).toBe(1n);
    expect(unitFactor('k', 'bytes')).toBe(1024n);
    expect(unitFactor('KB', 'bytes')).toBe(1000n);
    expect(unitFactor('MiB', 'bytes')).toBe(1048576n);
    expect(unitFactor('M', 'bytes')).toBe(1048576n);
    expect(unitFactor('GB', 'bytes')).toBe(1000000000n);
    expect(unitFactor('TiB', 'bytes')).toBe(1024n ** 4n);
    expect(() => unitFactor('furlongs', 'bytes')).toThrow(LibvirtXmlError);
    const root = parseRoot("<volume><capacity unit='G'>3</capacity></volume>", 'volume');
    expect(scaledBytes(child(root, 'capacity'), 'c', 'bytes')).toBe(3n * 1024n ** 3n);
  });
});
