/**
 * Precompiled schema validators. In src/ there are none: `schema.ts` compiles schemas/ with ajv at
 * first use. The bundled CLI's build (scripts/build-cli.mjs) puts ajv standalone code, generated
 * from schemas/ with `createAjv()`'s options, in place of this module, so its starts compile nothing.
 */
import type { ValidateFunction } from 'ajv/dist/2020.js';

export const PRECOMPILED: Record<string, ValidateFunction> | undefined = undefined;
