/**
 * How git gets credentials, without them ever being in argv, a URL git sees, or a log line:
 *
 * - SSH deploy key (`--git-ssh-key FILE`): GIT_SSH_COMMAND runs OpenSSH with that key only
 *   (IdentitiesOnly), BatchMode (never a prompt), StrictHostKeyChecking=yes against
 *   `--git-known-hosts FILE` (UserKnownHostsFile; else ssh's default known_hosts): an unknown or
 *   changed host key fails the fetch. Any ssh URL gets StrictHostKeyChecking=yes and BatchMode.
 * - HTTPS token (`--git-token-file FILE`) or credentials a user put in the URL: git is handed
 *   GIT_ASKPASS, a small script in the cache folder that answers git's "Username for" prompt with
 *   the URL's user name (default `x-access-token`) and its "Password for" prompt by reading the
 *   token file (first line) at that moment (a rotated token is picked up), or with the URL's
 *   password, passed to it in the git process's environment, not its arguments.
 */
import { chmodSync, mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type { ParsedRemote } from './redact.js';

export interface GitCredentialOptions {
  /** Private key file for ssh remotes. */
  sshKey?: string;
  /** known_hosts file the ssh host key is verified against. */
  knownHosts?: string;
  /** File whose first line is the HTTPS token. */
  tokenFile?: string;
}

/** The askpass script: sh, no arguments interpolated into commands. */
export const ASKPASS_SCRIPT = `#!/bin/sh
# virtform: answers git's credential prompts (GIT_ASKPASS). Written by virtform; safe to delete.
case "$1" in
  Username*) printf '%s\\n' "\${VIRTFORM_GIT_USERNAME:-x-access-token}" ;;
  *)
    if [ -n "\${VIRTFORM_GIT_TOKEN_FILE:-}" ]; then
      IFS= read -r token < "$VIRTFORM_GIT_TOKEN_FILE" || [ -n "$token" ] || exit 1
      printf '%s\\n' "$(printf '%s' "$token" | tr -d '\\r')"
    else
      printf '%s\\n' "\${VIRTFORM_GIT_PASSWORD:-}"
    fi ;;
esac
`;

/** Quote one word for the sh that git runs GIT_SSH_COMMAND with. */
export function shQuote(s: string): string {
  return `'${s.replace(/'/g, `'\\''`)}'`;
}

/** The GIT_SSH_COMMAND for an ssh remote. */
export function sshCommand(o: GitCredentialOptions): string {
  const parts = ['ssh', '-o', 'BatchMode=yes', '-o', 'StrictHostKeyChecking=yes'];
  if (o.knownHosts) parts.push('-o', shQuote(`UserKnownHostsFile=${o.knownHosts}`), '-o', 'GlobalKnownHostsFile=/dev/null');
  if (o.sshKey) parts.push('-i', shQuote(o.sshKey), '-o', 'IdentitiesOnly=yes', '-o', 'IdentityAgent=none');
  return parts.join(' ');
}

/**
 * The environment additions for git's network calls to `remote`. `stateDir` is where the askpass
 * script is written (mode 0700), when needed.
 */
export function credentialEnv(remote: ParsedRemote, o: GitCredentialOptions, stateDir: string): Record<string, string> {
  const env: Record<string, string> = {};
  if (remote.transport === 'ssh') env.GIT_SSH_COMMAND = sshCommand(o);
  if (remote.transport === 'https' || remote.transport === 'http') {
    const needsAskpass = o.tokenFile !== undefined || remote.password !== undefined || remote.username !== undefined;
    if (needsAskpass) {
      mkdirSync(stateDir, { recursive: true, mode: 0o700 });
      const script = join(stateDir, 'askpass.sh');
      writeFileSync(script, ASKPASS_SCRIPT, { mode: 0o700 });
      chmodSync(script, 0o700);
      env.GIT_ASKPASS = script;
      if (o.tokenFile) {
        env.VIRTFORM_GIT_TOKEN_FILE = o.tokenFile;
        // With a token file, the URL's user info (https://oauth2@gitlab.example/...) is the user name.
        if (remote.username !== undefined) env.VIRTFORM_GIT_USERNAME = remote.username;
      } else if (remote.password !== undefined) {
        env.VIRTFORM_GIT_USERNAME = remote.username ?? 'x-access-token';
        env.VIRTFORM_GIT_PASSWORD = remote.password;
      } else if (remote.username !== undefined) {
        // https://TOKEN@host/repo: the user info alone is the token.
        env.VIRTFORM_GIT_PASSWORD = remote.username;
      }
    }
  }
  return env;
}
