/**
 * The `--git` flags shared by `reconcile`, `status` and `watch` (definitions only: commander and
 * nothing else, so that building the command tree for `--help` or `--version` loads no engine).
 * `git.ts` interprets them.
 */
import { InvalidArgumentError, Option, type Command } from 'commander';

export interface GitFlags {
  git?: string;
  branch?: string;
  tag?: string;
  commit?: string;
  path?: string;
  gitInterval?: number;
  verifyCommits?: boolean;
  gpgKeyring?: string;
  sshAllowedSigners?: string;
  gitSshKey?: string;
  gitKnownHosts?: string;
  gitTokenFile?: string;
}

/** Add the git flags to a command (`watch` also gets --git-interval). */
export function addGitOptions(cmd: Command, o: { interval?: boolean } = {}): Command {
  cmd
    .option('--git <url>', 'take the manifests from a git repository instead of DIR (https, ssh, git:// or file:// URL, or a local path)')
    .option('--branch <name>', 'with --git: the branch to follow (default: the remote\'s default branch, HEAD)')
    .option('--tag <name>', 'with --git: a tag instead of a branch')
    .option('--commit <sha>', 'with --git: one fixed commit')
    .option('--path <dir>', 'with --git: folder of the manifests, relative to the repository root (default: the root)');
  if (o.interval) {
    cmd.addOption(new Option('--git-interval <seconds>', 'with --git: fetch every N seconds (a new commit triggers a run)').default(60)
      .argParser((v: string) => {
        const n = Number(v);
        if (!Number.isFinite(n) || n < 0.1) throw new InvalidArgumentError('--git-interval must be a number >= 0.1');
        return n;
      }));
  }
  return cmd
    .option('--verify-commits', 'with --git: apply only commits with a good signature of a key of --gpg-keyring or --ssh-allowed-signers')
    .option('--gpg-keyring <file>', 'public keys (armored or binary) whose gpg signatures --verify-commits accepts')
    .option('--ssh-allowed-signers <file>', 'allowed signers file (gpg.ssh.allowedSignersFile) whose ssh signatures --verify-commits accepts')
    .option('--git-ssh-key <file>', 'private key (deploy key) for ssh URLs')
    .option('--git-known-hosts <file>', 'known_hosts the ssh host key is verified against (StrictHostKeyChecking=yes)')
    .option('--git-token-file <file>', 'file whose first line is the HTTPS token (handed to git through GIT_ASKPASS, never in argv)');
}
