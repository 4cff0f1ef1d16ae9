/**
 * Git repositories as manifest sources (`--git URL`): fetch with Debian's git (execFile, no
 * shell), credentials through GIT_SSH_COMMAND / GIT_ASKPASS, signature checks with
 * `git verify-commit`, checkouts in a cache folder under the data dir, and the fetched/applied
 * lifecycle recorded in the state DB.
 */
export { GitError, runGit, cleanGitEnv } from './exec.js';
export { parseRemote, redactUrl, Redactor, type ParsedRemote } from './redact.js';
export { credentialEnv, sshCommand, shQuote, ASKPASS_SCRIPT, type GitCredentialOptions } from './credentials.js';
export {
  GitRepository, SignatureError, checkGitSpec, describeRef, normalizeGitPath, rebaseState, refString, short,
  type GitRef, type GitSourceSpec, type GitVerifyOptions, type GitRepositoryOptions, type Validation,
} from './repository.js';
export { GitSync, gitSummary, gitStatusFromRecord, type GitSourceStatus, type Consideration } from './sync.js';
