import { describe, expect, it } from 'vitest';
import { ManifestSizeError, formatSize, parseSize } from '../../../src/manifest/index.js';

const KiB = 1024;
const MiB = 1024 ** 2;
const GiB = 1024 ** 3;
const TiB = 1024 ** 4;

describe('parseSize', () => {
  it.each<[string | number, number]>([
    [0, 0],
    [1048576, MiB],
    ['1048576', MiB],
    ['512B', 512],
    ['1KiB', KiB],
    ['1K', KiB],
    ['1KB', 1000],
    ['512MiB', 512 * MiB],
    ['512M', 512 * MiB],
    ['2MB', 2_000_000],
    ['10GiB', 10 * GiB],
    ['1G', GiB],
    ['3GB', 3_000_000_000],
    ['2TiB', 2 * TiB],
    ['2T', 2 * TiB],
    ['1TB', 1e12],
    ['1.5GiB', 1.5 * GiB],
    ['0.5KiB', 512],
    ['10 GiB', 10 * GiB],
    [Number.MAX_SAFE_INTEGER, Number.MAX_SAFE_INTEGER],
  ])('%j → %d bytes', (input, bytes) => {
    expect(parseSize(input)).toBe(bytes);
  });

  it.each<[string | number, RegExp]>([
    ['lots', /invalid size "lots"/],
    ['', /invalid size/],
    ['GiB', /invalid size/],
    ['10PiB', /unknown unit "PiB"/],
    ['10gib', /unknown unit "gib"/],
    ['10 G iB', /invalid size/],
    ['-1', /negative/],
    ['-5GiB', /negative/],
    [-1, /negative/],
    ['0.5B', /not a whole number of bytes/],
    ['1.3', /not a whole number of bytes/],
    [1.5, /not a whole number of bytes/],
    ['99999999TiB', /too large/],
    ['9007199254740992', /too large/],
    [2 ** 53, /too large/],
    [Number.POSITIVE_INFINITY, /not a finite number/],
    [Number.NaN, /not a finite number/],
    ['1'.repeat(40), /too large/],
  ])('%j is rejected', (input, message) => {
    expect(() => parseSize(input)).toThrow(ManifestSizeError);
    expect(() => parseSize(input)).toThrow(message);
  });

  it('formats sizes back in binary units', () => {
    expect(formatSize(GiB)).toBe('1GiB');
    expect(formatSize(1536)).toBe('1.5KiB');
    expect(formatSize(100)).toBe('100B');
    expect(formatSize(5 * TiB)).toBe('5TiB');
  });
});
