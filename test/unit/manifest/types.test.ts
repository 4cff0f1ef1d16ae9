import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { OUTPUT_FILE, generateTypes } from '../../../scripts/gen-types.js';

describe('generated types', () => {
  it('src/manifest/types.generated.ts matches a fresh generation from schemas/', async () => {
    const fresh = await generateTypes();
    expect(fresh).toContain('export interface VirtualMachineSpec');
    expect(fresh).toContain('export interface StoragePoolSpec');
    expect(readFileSync(OUTPUT_FILE, 'utf8')).toBe(fresh);
  });
});
