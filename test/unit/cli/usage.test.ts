/**
 * Usage errors of every subcommand surface as a CommanderError that main() maps to exit 2,
 * never as commander's own process.exit(1).
 */
import { CommanderError } from 'commander';
import { describe, expect, it, vi } from 'vitest';

vi.mock('../../../src/cli/commands/reconcile.js', () => ({ runReconcile: vi.fn(async () => 0) }));
const { buildProgram } = await import('../../../src/cli/program.js');
const { runReconcile } = await import('../../../src/cli/commands/reconcile.js');

async function parseError(args: string[]): Promise<CommanderError> {
  const stderr = vi.spyOn(process.stderr, 'write').mockImplementation(() => true);
  try {
    await buildProgram().parseAsync(['node', 'virtform', ...args]);
  } catch (e) {
    return e as CommanderError;
  } finally {
    stderr.mockRestore();
  }
  throw new Error(`no usage error for ${args.join(' ')}`);
}

describe('CLI usage errors', () => {
  it.each([
    [['reconcile', 'm', '--concurrency', '0'], 'commander.invalidArgument'],
    [['reconcile', 'm', '--domain-type', 'xen'], 'commander.invalidArgument'],
    [['watch', 'm', '--domain-type', 'xen'], 'commander.invalidArgument'],
    [['reconcile', 'm', '--bogus'], 'commander.unknownOption'],
    [['status', '--bogus'], 'commander.unknownOption'],
    [['validate'], 'commander.missingArgument'],
    [['nosuch'], 'commander.unknownCommand'],
  ])('%j is a CommanderError (%s), not an exit of the process', async (args, code) => {
    const e = await parseError(args);
    expect(e).toBeInstanceOf(CommanderError);
    expect(e.code).toBe(code);
  });

  it('--domain-type reaches the command, default auto', async () => {
    await buildProgram().parseAsync(['node', 'virtform', 'reconcile', 'm', '--domain-type', 'qemu']);
    await buildProgram().parseAsync(['node', 'virtform', 'reconcile', 'm']);
    const calls = vi.mocked(runReconcile).mock.calls;
    expect(calls.map((c) => c[1].domainType)).toEqual(['qemu', 'auto']);
  });
});
