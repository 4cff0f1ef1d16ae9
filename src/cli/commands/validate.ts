import { EXIT, loadDesired, manifestErrorsJson } from '../common.js';

/**
 * `virtform validate DIR|FILE`: exit 0 when valid, 2 with every error otherwise. With `--json` the
 * result is one JSON document on stdout: `{valid, resources?, errors: [{file, line, col, kind, name,
 * field, message}]}` (unknown parts null).
 */
export async function runValidate(dir: string, o: { json?: boolean }): Promise<number> {
  const loaded = await loadDesired(dir);
  if (o.json) {
    const out = loaded.ok
      ? { valid: true, resources: loaded.manifestCount, errors: [] }
      : { valid: false, errors: manifestErrorsJson(loaded.errors) };
    process.stdout.write(`${JSON.stringify(out, null, 2)}\n`);
    return loaded.ok ? EXIT.ok : EXIT.invalid;
  }
  if (!loaded.ok) {
    process.stderr.write(`${loaded.text}\n${loaded.errors.length} error(s) in ${dir}\n`);
    return EXIT.invalid;
  }
  process.stdout.write(`${dir}: ${loaded.manifestCount} resource(s), valid\n`);
  return EXIT.ok;
}
