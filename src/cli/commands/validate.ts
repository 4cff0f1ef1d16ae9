// The manifest layer only: validate loads no state DB driver, libvirt client or engine (a test
// checks the bundled CLI: test/integration/cli/fast-start.test.ts).
import { formatManifestError, loadManifests } from '../../manifest/index.js';
import { EXIT } from '../exit.js';
import { manifestErrorsJson, resolvePolicy } from '../manifest-input.js';

/**
 * `virtform validate DIR|FILE`: exit 0 when valid, 2 with every error otherwise (manifests outside
 * the policy, and a broken policy file, included). With `--json` the result is one JSON document on
 * stdout: `{valid, resources?, policy, errors: [{file, line, col, kind, name, field, message}]}`
 * (unknown parts null).
 */
export async function runValidate(dir: string, o: { json?: boolean; policy?: string }): Promise<number> {
  const policy = await resolvePolicy(o.policy);
  if (!policy.ok) {
    if (o.json) process.stdout.write(`${JSON.stringify({ valid: false, policy: o.policy ?? null, errors: manifestErrorsJson(policy.errors) }, null, 2)}\n`);
    process.stderr.write(`${policy.text}\n`);
    return EXIT.invalid;
  }
  // The checks reconcile makes before it plans (it then builds the desired state from what passed).
  const loaded = await loadManifests(dir, { policy: policy.policy, revision: false });
  const policyFile = policy.policy?.file ?? null;
  if (o.json) {
    const out = loaded.ok
      ? { valid: true, resources: loaded.desired.manifests.length, policy: policyFile, errors: [] }
      : { valid: false, policy: policyFile, errors: manifestErrorsJson(loaded.errors) };
    process.stdout.write(`${JSON.stringify(out, null, 2)}\n`);
    return loaded.ok ? EXIT.ok : EXIT.invalid;
  }
  if (!loaded.ok) {
    process.stderr.write(`${loaded.errors.map(formatManifestError).join('\n')}\n${loaded.errors.length} error(s) in ${dir}\n`);
    return EXIT.invalid;
  }
  process.stdout.write(`${dir}: ${loaded.desired.manifests.length} resource(s), valid${policyFile ? ` (policy ${policyFile})` : ''}\n`);
  return EXIT.ok;
}
