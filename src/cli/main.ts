#!/usr/bin/env node
/**
 * virtform command line.
 *
 * Exit codes (stable, for scripts):
 *   0  success (reconcile converged, validate found no problem, dry-run with nothing to do)
 *   1  apply or runtime failure (a step failed, libvirtd unreachable, the writer lock is held, the
 *      state DB cannot be opened or holds the records of another libvirt host), or changes held
 *      because they would destroy data and --allow-data-loss was not given
 *   2  invalid input (manifest errors, empty manifest folder without --allow-empty, a file given to
 *      reconcile/watch instead of a folder, bad flags, a --uri that is not a libvirt URI or that the
 *      transport rules refuse: plain qemu+tcp to another machine, no_verify, without --insecure)
 *   3  `reconcile --dry-run --detailed-exitcode` only: changes are pending (held ones included);
 *      `export`: something could not be exported as it is (warnings; the rest is written)
 */
import { EXIT } from './exit.js';
import { VERSION } from './version.js';

async function main(): Promise<void> {
  // `virtform --version` alone is answered before commander and the command tree are loaded (a
  // start ~1.1x `node -e 0`: bench/results/cli.md); any other command line, `--version` among
  // other arguments included, goes to commander, which prints the same.
  const args = process.argv.slice(2);
  if (args.length === 1 && (args[0] === '--version' || args[0] === '-V')) {
    process.stdout.write(`${VERSION}\n`);
    return;
  }
  const [{ CommanderError }, { buildProgram }] = await Promise.all([import('commander'), import('./program.js')]);
  const program = buildProgram();
  try {
    await program.parseAsync(process.argv);
  } catch (e) {
    if (e instanceof CommanderError) {
      // --help and --version exit 0; usage errors are invalid input.
      process.exitCode = e.exitCode === 0 ? EXIT.ok : EXIT.invalid;
      return;
    }
    process.stderr.write(`virtform: ${e instanceof Error ? e.message : String(e)}\n`);
    process.exitCode = EXIT.failure;
  }
}

await main();
