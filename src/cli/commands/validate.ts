import { EXIT, loadDesired } from '../common.js';

/** `virtform validate DIR`: exit 0 when valid, 2 with every error otherwise. */
export async function runValidate(dir: string, o: { json?: boolean }): Promise<number> {
  const loaded = await loadDesired(dir);
  if (o.json) {
    const out = loaded.ok
      ? { valid: true, resources: loaded.manifestCount, errors: [] }
      : { valid: false, errors: loaded.errors };
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
