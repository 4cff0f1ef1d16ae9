/**
 * The `yaml` package, loaded at its first use (issue 22). A valid manifest folder is read by
 * js-yaml alone (src/manifest/yaml-source.ts's fast read); `yaml` — positions for errors, the
 * files js-yaml cannot be trusted with, cloud-init's documents — is needed by few runs, and its
 * ~260 KB took part in every start of `validate` and `reconcile` (compiled and initialized: ~12 ms
 * CPU and ~8 MiB of a 2,002-resource validate, bench/FINDINGS.md). A synchronous require keeps its
 * callers synchronous; in the bundled CLI (scripts/build-cli.mjs) it is not bundled on that path
 * and is read from node_modules when first needed. Node resolves `yaml` to the same CommonJS module
 * for `import` and `require`, so this is the one instance a process has.
 */
import { createRequire } from 'node:module';
import type * as Yaml from 'yaml';

export type YamlLib = typeof Yaml;

let lib: YamlLib | undefined;

export function yamlLib(): YamlLib {
  return (lib ??= createRequire(import.meta.url)('yaml') as YamlLib);
}
