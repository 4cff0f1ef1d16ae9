/**
 * The command tree of the virtform CLI (flags, help, choices); `main.ts` runs it and maps errors
 * to exit codes.
 */
import { Command, CommanderError, InvalidArgumentError, Option } from 'commander';
import { checkPostgresUrl, isPostgresLocation } from '../state/location.js';
import { EXIT } from './exit.js';
import { addGitOptions } from './git-options.js';
import { VERSION } from './version.js';
// Each command's implementation (engine, libvirt client, state DB, schemas) is imported when that
// command runs, so `--help` and `--version` load only commander.

function int(name: string, min: number, max: number) {
  return (v: string): number => {
    const n = Number(v);
    if (!Number.isInteger(n) || n < min || n > max) throw new InvalidArgumentError(`${name} must be an integer from ${min} to ${max}`);
    return n;
  };
}

function num(name: string, min: number) {
  return (v: string): number => {
    const n = Number(v);
    if (!Number.isFinite(n) || n < min) throw new InvalidArgumentError(`${name} must be a number >= ${min}`);
    return n;
  };
}

/** `--move-bandwidth 50MiB`: bytes per second (a size: `50MiB`, `1G`, a plain number of bytes). */
function bandwidth(v: string): number {
  const m = /^\s*(\d+(?:\.\d+)?)\s*([KMGT]i?B?|B)?(?:\/s)?\s*$/i.exec(v);
  if (!m) throw new InvalidArgumentError('--move-bandwidth must be a size per second, e.g. 50MiB or 100M');
  const unit = (m[2] ?? 'B').toUpperCase().replace(/B$/, '');
  const pow = { '': 0, K: 1, M: 2, G: 3, T: 4, KI: 1, MI: 2, GI: 3, TI: 4 }[unit];
  const base = unit.endsWith('I') ? 1024 : unit === '' ? 1 : 1000;
  const n = Math.floor(Number(m[1]) * base ** (pow ?? 0));
  if (pow === undefined || !(n > 0)) throw new InvalidArgumentError('--move-bandwidth must be a size per second, e.g. 50MiB or 100M');
  return n;
}

/** `--max-deletions N|all`. */
function maxDeletions(v: string): number | 'all' {
  if (v === 'all') return 'all';
  const n = Number(v);
  if (!Number.isInteger(n) || n < 0) throw new InvalidArgumentError('--max-deletions must be a whole number >= 0, or "all"');
  return n;
}

export function buildProgram(): Command {
  const program = new Command('virtform')
    .description('Declarative reconciliation controller for KVM/QEMU hosts: YAML manifests in, converged libvirt out.')
    .version(VERSION)
    .showHelpAfterError('(run with --help for usage)')
    // Throw instead of exiting on usage errors, so they map to exit 2. Set before the subcommands
    // are added: they copy it from here (set later, a bad flag of a subcommand exited 1).
    .exitOverride()
    .addHelpText('after', `
Exit codes: 0 success · 1 apply/runtime failure, changes held for --allow-data-loss, or --wait timed out / a waited VM is not running · 2 invalid input · 3 changes pending,
held ones included (--dry-run --detailed-exitcode)
Environment: VIRTFORM_URI, VIRTFORM_DB and VIRTFORM_DATA_DIR set the defaults of --uri, --db and --data-dir;
a PostgreSQL password comes from PGPASSFILE (default ~/.pgpass) or PGPASSWORD, never from the URL.`);
  // A --uri the transport rules refuse (plain tcp to another machine, no_verify without --insecure;
  // src/libvirt/security.ts), or that is not a libvirt URI, is refused before anything runs (exit 2).
  // Not with --offline, which opens no connection.
  program.hook('preAction', async (_root, action) => {
    const o = action.opts() as { uri?: unknown; insecure?: boolean; offline?: boolean };
    if (typeof o.uri !== 'string' || o.offline) return;
    const { checkTransportSecurity, TransportSecurityError } = await import('../libvirt/security.js');
    const { UriError } = await import('../libvirt/uri.js');
    try {
      checkTransportSecurity(o.uri, { insecure: o.insecure === true });
    } catch (e) {
      if (!(e instanceof TransportSecurityError || e instanceof UriError)) throw e;
      process.stderr.write(`virtform: ${e.message}\n`);
      throw new CommanderError(EXIT.invalid, 'virtform.uri', e.message);
    }
  });
  // A --db URL with a password is refused before anything runs (exit 2); the message hides the password.
  program.hook('preAction', (_root, action) => {
    const db: unknown = action.opts().db;
    if (typeof db !== 'string' || !isPostgresLocation(db)) return;
    try {
      checkPostgresUrl(db);
    } catch (e) {
      const message = e instanceof Error ? e.message : String(e);
      process.stderr.write(`virtform: ${message}\n`);
      throw new CommanderError(EXIT.invalid, 'virtform.dbUrl', message);
    }
  });

  const uriOption = (): Option => new Option('--uri <uri>',
    'libvirt connection URI: qemu:///system, qemu+ssh://[user@]host[:port]/system, qemu+tls://host/system, qemu+tcp://host/system (needs --insecure unless loopback)')
    .default(process.env.VIRTFORM_URI ?? 'qemu:///system');
  const insecureOption = (): Option => new Option('--insecure',
    'allow plain qemu+tcp to a non-loopback address (libvirt\'s RPC unencrypted, usually unauthenticated) and no_verify=1 / known_hosts_verify=ignore in a tls or ssh URI');
  const dbOption = (): Option => new Option('--db <path|url>',
    'state DB: a SQLite file (default: /var/lib/virtform/state.db as root, else XDG data dir) or postgres://user@host:port/database')
    .default(process.env.VIRTFORM_DB);
  const dataDirOption = (): Option => new Option('--data-dir <dir>',
    'folder of the image and git caches (default: the SQLite DB\'s folder; with PostgreSQL, /var/lib/virtform as root, else the XDG data dir)')
    .default(process.env.VIRTFORM_DATA_DIR);
  const domainTypeOption = (): Option => new Option('--domain-type <type>',
    'domain type of the VMs virtform defines: auto = kvm when the host offers it, else qemu (TCG)')
    .choices(['auto', 'kvm', 'qemu']).default('auto');
  const policyOption = (): Option => new Option('--policy <file>',
    'policy file: allowed roots for host paths, URL hosts, limits (default: /etc/virtform/policy.yaml when it exists)');
  const maxDeletionsOption = (): Option => new Option('--max-deletions <n|all>',
    'mass-deletion brake: refuse (exit 1) a plan deleting more resources than this (replaces and held changes count); default max(5, 10% of owned), and a plan deleting every owned VM (two or more) is refused unless this is given; "all" disables it')
    .argParser(maxDeletions);
  const stopTimeoutOption = (): Option => new Option('--stop-timeout <seconds>',
    'on SIGTERM/SIGINT: start no new step and wait this long for the steps in flight; then they are abandoned ' +
    '(journal entries closed as interrupted, the next run finishes them) and the process exits')
    .argParser(num('--stop-timeout', 0)).default(30);
  // The writer lease (src/state/lease.ts): defaults close to Kubernetes leader election.
  const LEASE_DEFAULTS = { lease: 15, renewDeadline: 10, retry: 2 };
  const leaseOptions = (cmd: Command): Command => cmd
    .addOption(new Option('--lease-duration <seconds>', 'writer lease: how long it lasts after its last renewal, by the database\'s clock; ' +
      'a holder on another machine is taken over only after that (a dead pid on this machine at once)').argParser(num('--lease-duration', 0.001)).default(LEASE_DEFAULTS.lease))
    .addOption(new Option('--renew-deadline <seconds>', 'writer lease: the holder makes no further libvirt change (steps down) once its last successful renewal ' +
      'is older than this on its own monotonic clock; shorter than --lease-duration').argParser(num('--renew-deadline', 0.001)).default(LEASE_DEFAULTS.renewDeadline))
    .addOption(new Option('--retry-period <seconds>', 'writer lease: interval between renewals, and between attempts to acquire a held lease; shorter than --renew-deadline')
      .argParser(num('--retry-period', 0.001)).default(LEASE_DEFAULTS.retry));

  program.command('validate')
    .description('validate a manifest folder: every problem at once, as file:line:col: kind/name: field: message')
    .argument('<dir>', 'folder of *.yaml / *.yml manifests (searched recursively), or one manifest file')
    .option('--json', 'print the result as JSON')
    .addOption(policyOption())
    .action(async (dir: string, o: { json?: boolean; policy?: string }) => {
      process.exitCode = await (await import('./commands/validate.js')).runValidate(dir, o);
    });

  const reconcile = program.command('reconcile')
    .description('converge the host to the manifests (with --dry-run: print the plan and change nothing)')
    .argument('[dir]', 'folder of manifests (the whole set: a single file is refused); or --git URL instead')
    .addOption(uriOption())
    .addOption(insecureOption())
    .addOption(dbOption())
    .addOption(dataDirOption())
    .option('--dry-run', 'print the plan only; touch nothing')
    .option('--detailed-exitcode', 'with --dry-run: exit 3 when changes are pending, 0 when none')
    .option('--json', 'machine-readable plan and result on stdout')
    .option('--allow-empty', 'accept a folder with no manifests: deletes everything virtform owns in this DB')
    .option('--allow-data-loss', 'consent to steps that destroy data: deleting or replacing a volume that holds an imported ' +
      'image, is attached to a VM or backs another volume (without it they are held, exit 1); --allow-empty does not imply it')
    .addOption(maxDeletionsOption())
    .option('--ignore-suspend', 'apply even though the state DB is suspended (virtform suspend); without it a suspended DB is exit 1')
    .addOption(policyOption())
    .option('--concurrency <n>', 'parallel apply steps', int('--concurrency', 1, 64), 4)
    .option('--max-attempts <n>', 'attempts per step before it is marked failed', int('--max-attempts', 1, 20), 3)
    .option('--retry-delay <ms>', 'base delay of the exponential backoff between attempts', num('--retry-delay', 0), 250)
    .option('--shutdown-timeout <seconds>', 'graceful VM shutdown wait before forcing it off', num('--shutdown-timeout', 0), 60)
    .option('--detach-timeout <seconds>', 'hot-plug: how long a running guest gets to release a detached disk or NIC; ' +
      'one it has not released by then is reported and the VM marked restart required', num('--detach-timeout', 0), 30)
    .option('--move-bandwidth <size>', 'limit the copy of a cold move between hosts to this many bytes per second (e.g. 50MiB)', bandwidth)
    .addOption(stopTimeoutOption())
    .option('--download-timeout <seconds>', 'image download (spec.source.url): fail after this long without connection, answer or data; '
      + 'images are cached by sha256 in images/ beside the state DB', num('--download-timeout', 0.1), 30)
    .addOption(domainTypeOption())
    .option('--wait', 'after a successful apply, wait until every VM declared running has an address on each NIC on a DHCP network ' +
      '(NICs on networks without DHCP are not waited for), then print the addresses; exit 1 on timeout or when such a VM is not running')
    .option('--wait-timeout <seconds>', 'with --wait: how long to wait for the addresses', num('--wait-timeout', 0), 300)
    .option('--wait-for <vms>', 'like --wait, for these VMs only (comma-separated names of VMs declared running)', (v: string) => v.split(',').map((x) => x.trim()).filter(Boolean))
    .option('--no-color', 'plain output even on a terminal')
    .option('--lock-timeout <seconds>', 'wait up to this long for the writer lease while another process holds it (0: exit 1 at once, naming the holder)',
      num('--lock-timeout', 0), 0)
    .option('--explain', 'Host manifests: for each VM placed, every host rejected with the filter that rejected it, and the chosen host\'s score parts')
    .option('--rebalance', 'Host manifests: propose (with --dry-run) or make cold moves that reduce spread skew or overload, at most --max-moves')
    .option('--max-moves <n>', 'with --rebalance: most VMs moved (drains and pin changes are not counted)', int('--max-moves', 0, 1000), 1)
    .option('--out <file>', 'with --dry-run: also write the plan to FILE (JSON, format virtform-plan/1: digests only, no secrets; '
      + 'with --json stdout is the same document); apply it with --plan FILE')
    .option('--plan <file>', 'apply exactly the steps of a saved plan (DIR: the one given, else the folder recorded in the plan), with the consent flags '
      + 'recorded in it; refused (exit 1, naming what changed, nothing applied) when the manifests, the objects on the host or a touched '
      + 'object\'s definition changed since. While a watcher holds the writer lease the plan is queued for it to apply')
    .option('--no-queue', 'with --plan: while another process holds the writer lease, exit 1 naming it instead of queueing the plan for it')
    .option('--queue-timeout <seconds>', 'with --plan: how long to wait for the watcher to carry a queued plan out (default: as long as it takes; a plan '
      + 'not yet taken then is cancelled)', num('--queue-timeout', 0));
  leaseOptions(reconcile)
    .action(async (dir: string | undefined, o, cmd: Command) => {
      // With Host manifests the manifests name the hosts: a --uri (flag or VIRTFORM_URI) is refused.
      const uriGiven = cmd.getOptionValueSource('uri') === 'cli' || Boolean(process.env.VIRTFORM_URI);
      process.exitCode = await (await import('./commands/reconcile.js')).runReconcile(dir, { ...o, uriGiven });
    });
  addGitOptions(reconcile);

  const status = program.command('status')
    .description('each managed resource: desired vs observed state, derived status (converged, drifted, failed, pending), last error, attempts, last applied revision, and the IP addresses of each running VM per NIC with their source (DHCP lease, guest agent, ARP); exit 1 when the DB is missing or libvirt unreachable (unless --offline)')
    .argument('[dir]', 'manifest folder: also list declared resources not created yet')
    .addOption(uriOption())
    .addOption(insecureOption())
    .addOption(dbOption())
    .addOption(dataDirOption())
    .option('--json', 'print as JSON')
    .option('--offline', 'do not contact libvirtd (nor, with --git, the repository); show what the state DB knows')
    .addOption(policyOption())
    .action(async (dir: string | undefined, o) => {
      process.exitCode = await (await import('./commands/status.js')).runStatus(dir, o);
    });
  addGitOptions(status);

  const watch = program.command('watch')
    .description('long-running controller: reconcile on manifest changes (a folder, or new commits of --git URL), libvirt events and a periodic resync; ' +
      'runs while it holds the writer lease, and waits as a standby (retrying every --retry-period) while another process holds it')
    .argument('[dir]', 'folder of manifests (the whole set: a single file is refused); or --git URL instead')
    .addOption(uriOption())
    .addOption(insecureOption())
    .addOption(dbOption())
    .addOption(dataDirOption())
    .option('--resync <seconds>', 'period of the full read: a run reading every manifest file and host definition again ' +
      '(drift of networks, pools and volumes, which libvirt announces with no event, is corrected within it)', num('--resync', 1), 300)
    .option('--no-incremental', 'every run is a full read (default: runs started by a file change or a lifecycle event read again only what changed)')
    .option('--debounce <ms>', 'quiet time after file changes before reconciling', num('--debounce', 0), 500)
    .option('--listen <host:port>', 'HTTP listener for the dashboard (/), /api/v1, /healthz /readyz /status /metrics; a non-loopback address needs --http-token-file and --http-tls-cert/--http-tls-key', '127.0.0.1:9465')
    .option('--no-listen', 'no HTTP listener')
    .option('--allowed-host <name>', 'also answer HTTP requests whose Host header names NAME (with the port); by default only the listen address, localhost, 127.0.0.1 and [::1] (repeatable)', (v: string, prev: string[] = []) => [...prev, v])
    .option('--http-token-file <file>', 'bearer token (first line, 16+ characters, not world-readable) every HTTP request but /healthz and /login needs (or the session cookie of POST /api/v1/session); required off loopback')
    .option('--http-tls-cert <file>', 'PEM certificate of the HTTPS listener (with --http-tls-key); required off loopback')
    .option('--http-tls-key <file>', 'PEM private key of the HTTPS listener (with --http-tls-cert)')
    .option('--history-runs <n>', 'runs the dashboard\'s history keeps in the state DB (older ones are pruned; 0: none recorded)', int('--history-runs', 0, 1_000_000), 500)
    .option('--log-level <level>', 'debug | info | warn | error', 'info')
    .option('--concurrency <n>', 'parallel apply steps', int('--concurrency', 1, 64), 4)
    .option('--max-attempts <n>', 'attempts per step', int('--max-attempts', 1, 20), 3)
    .option('--retry-delay <ms>', 'base backoff delay', num('--retry-delay', 0), 250)
    .option('--shutdown-timeout <seconds>', 'graceful VM shutdown wait', num('--shutdown-timeout', 0), 60)
    .addOption(stopTimeoutOption())
    .option('--allow-empty', 'accept an empty manifest folder (deletes everything virtform owns)')
    .addOption(maxDeletionsOption())
    .addOption(policyOption())
    .option('--reconnect-max <seconds>', 'cap of the exponential backoff between reconnect attempts', num('--reconnect-max', 0.1), 30)
    .option('--requeue-max <seconds>', 'cap of the jittered exponential backoff (from 1 s) before a failed run is retried', num('--requeue-max', 1), 60)
    .addOption(domainTypeOption());
  leaseOptions(watch)
    .addHelpText('after', `
Standby: several watchers (on several machines) may share one state DB (PostgreSQL); exactly one
holds the writer lease and applies, the others stand by (/readyz 503, /status names the leader).
When the leader dies or freezes, a standby takes over within
  --lease-duration + --retry-period seconds (${LEASE_DEFAULTS.lease + LEASE_DEFAULTS.retry} s with the defaults)
of the leader's last renewal, and converges what changed meanwhile. A leader that could not renew
for --renew-deadline seconds (its own clock) makes no further libvirt change, and every state DB
write is fenced by the lease's epoch: a leader frozen past its lease (SIGSTOP, a VM pause) finds
itself deposed when it wakes, applies nothing, and stands by. On this machine, a leader whose pid
is gone is taken over at once.`)
    .action(async (dir: string | undefined, o, cmd: Command) => {
      const uriGiven = cmd.getOptionValueSource('uri') === 'cli' || Boolean(process.env.VIRTFORM_URI);
      process.exitCode = await (await import('./commands/watch.js')).runWatch(dir, { ...o, uriGiven });
    });
  addGitOptions(watch, { interval: true });

  program.command('console')
    .description("attach the terminal to a running VM's serial console through libvirt's console stream (like virsh console); Ctrl-] leaves")
    .argument('<vm>', 'VirtualMachine (libvirt domain) name')
    .addOption(uriOption())
    .addOption(insecureOption())
    .option('--force', 'take the console over from another client holding it (that client is disconnected)')
    .addHelpText('after', `
On a terminal, keys go to the guest raw (Ctrl-C too) and the terminal is restored when the session ends.
Without a terminal, stdin and stdout are pipes: stdin goes to the guest, the guest's output to stdout,
and a 0x1d byte (Ctrl-]) or the end of stdin leaves. Messages go to stderr.
Exit codes: 0 left (Ctrl-], end of stdin) or the console closed because the VM stopped;
1 no such VM, VM not running, console held by another client (use --force), connection or stream failure.`)
    .action(async (vm: string, o: { uri: string; force?: boolean }) => {
      process.exitCode = await (await import('./commands/console.js')).runConsole(vm, o);
    });

  // issue 24 (helper export): manifests for what already runs on a host.
  program.command('export')
    .description('write manifests (metadata.adopt: true) for objects that already exist on a host — VMs with the volumes, pools and networks they use, ' +
      'or every object without virtform\'s owner marker (--all) — read from libvirt only; what a manifest cannot carry over is a warning')
    .argument('[names...]', 'objects to export: VM, volume (resource or file name), network or pool names; Kind/NAME when a name is taken by several kinds')
    .addOption(uriOption())
    .addOption(insecureOption())
    .option('--all', 'every object without virtform\'s owner marker (pools and volumes carry none: all but those only virtform\'s VMs use)')
    .option('--include-managed', 'every object, virtform\'s own included (a round trip of a managed host)')
    .option('--out <dir>', 'write one file per object into DIR (vm-NAME.yaml, volume-NAME.yaml, network-NAME.yaml, pool-NAME.yaml); default: one YAML stream on stdout')
    .option('--force', 'overwrite files that exist in --out DIR')
    .option('--json', 'machine-readable result on stdout: each object, its file, its warnings and its manifest')
    .addHelpText('after', `
Export reads libvirt only, never the state DB, and never reads a volume's contents: volumes are written
without spec.source (a comment says so) and keep what they hold. Devices virtform does not model go into
spec.extraDevices; a device the default policy refuses (a host directory share, a host device) is left
out with a warning (add it by hand, with a --policy that allows it). Every element of a domain's definition the manifest would not keep is a warning: the
plan of \`virtform reconcile --dry-run\` names the same elements under the adoption.
Exit codes: 0 everything exported as it is; 3 something was not (warnings on stderr and in --json; the
rest is written); 2 bad input, nothing written (unknown NAME, neither NAME nor --all, files in DIR exist
without --force); 1 libvirt unreachable or a file could not be written.`)
    .action(async (names: string[], o) => {
      process.exitCode = await (await import('./commands/export.js')).runExport(names, o);
    });

  // issue 24 (helper restart): restart VMs to take what their definition holds for the next boot.
  const restart = program.command('restart')
    .description('restart VMs (graceful shutdown, forced after --shutdown-timeout; then start) so they boot with the changes reconcile marked ' +
      '"restart required"; journaled like any step; the restart-required mark clears')
    .argument('[vms...]', 'VirtualMachine names (managed by virtform, declared running)')
    .addOption(uriOption())
    .addOption(insecureOption())
    .addOption(dbOption())
    .addOption(dataDirOption())
    .option('--force', 'skip the graceful shutdown: force the VMs off, then start them')
    .option('--all-pending', 'also restart every managed VM whose restart-required mark is pending')
    .option('--shutdown-timeout <seconds>', 'graceful shutdown wait before forcing the VM off', num('--shutdown-timeout', 0), 60)
    .option('--json', 'machine-readable result on stdout')
    .option('--no-color', 'plain output even on a terminal')
    .option('--max-attempts <n>', 'attempts per step before it is marked failed', int('--max-attempts', 1, 20), 3)
    .option('--retry-delay <ms>', 'base delay of the exponential backoff between attempts', num('--retry-delay', 0), 250)
    .option('--lock-timeout <seconds>', 'wait up to this long for the writer lease while another process holds it (0: exit 1 at once, naming the holder)',
      num('--lock-timeout', 0), 0)
    .option('--no-queue', 'while a watcher holds the writer lease, exit 1 naming it instead of queueing the restart for it')
    .option('--queue-timeout <seconds>', 'how long to wait for the watcher to carry a queued restart out (default: as long as it takes; ' +
      'a request not yet taken then is cancelled)', num('--queue-timeout', 0))
    .addOption(domainTypeOption());
  leaseOptions(restart)
    .addHelpText('after', `
What a restart applies: the persistent definition as the last reconcile defined it (plan lines marked
[restart], "restart required" in status and in the plan's notes). A manifest edited since is applied by
reconcile (with restartPolicy: OnChange it restarts the VM itself). Refused (exit 2, nothing changed):
an unknown VM or one virtform does not manage, one declared stopped, one with metadata.reconcile:
disabled. Exit 1: the state DB is suspended (virtform suspend), a step failed, the writer lease is held and
--no-queue given. While a watcher holds the writer lease the restart is queued for it (its outcome printed).
A run killed between the stop and the start leaves the VM stopped: the next reconcile (or restart) starts it.`)
    .action(async (vms: string[], o) => {
      process.exitCode = await (await import('./commands/restart.js')).runRestart(vms, o);
    });

  program.command('suspend')
    .description('pause applies for this state DB (a running watcher keeps observing; reconcile refuses, exit 1); survives restarts; no writer lock needed')
    .addOption(dbOption())
    .addOption(dataDirOption())
    .option('--reason <text>', 'why (shown by status)')
    .option('--json', 'print the result as JSON')
    .action(async (o) => {
      process.exitCode = await (await import('./commands/suspend.js')).runSuspend(o);
    });

  program.command('resume')
    .description('lift `virtform suspend`: applies continue (a running watcher starts a run at once)')
    .addOption(dbOption())
    .addOption(dataDirOption())
    .option('--json', 'print the result as JSON')
    .action(async (o) => {
      process.exitCode = await (await import('./commands/suspend.js')).runResume(o);
    });

  // --- snapshots (issue 24: helper snaps) ----------------------------------------------------
  const snapshot = program.command('snapshot')
    .description('snapshots declared as kind Snapshot: list them, or revert a VM to one (the only imperative part: taking and deleting them is reconcile\'s)');
  snapshot.command('list')
    .description('the snapshots virtform took (kind Snapshot): VM, creation time, what they hold, and whether the host still has them')
    .addOption(uriOption())
    .addOption(insecureOption())
    .addOption(dbOption())
    .addOption(dataDirOption())
    .option('--offline', 'do not contact libvirtd: what the state DB recorded')
    .option('--json', 'print as JSON')
    .action(async (o) => {
      process.exitCode = await (await import('./commands/snapshot.js')).runSnapshotList(o);
    });
  leaseOptions(snapshot.command('revert')
    .description('restore a VM to a snapshot virtform took: its disks, and its memory and running state when the snapshot saved them; ' +
      'what the disks hold now is lost, so it needs --allow-data-loss (without it: the plan, exit 1); journaled; needs the writer lease. ' +
      'Afterwards the manifests still rule: a definition or state that differs from them is drift, corrected by the next reconcile')
    .argument('<name>', 'the Snapshot resource (metadata.name)')
    .addOption(uriOption())
    .addOption(insecureOption())
    .addOption(dbOption())
    .addOption(dataDirOption())
    .option('--allow-data-loss', 'consent: the current contents of the VM\'s disks (and its running memory) are lost')
    .option('--lock-timeout <seconds>', 'wait up to this long for the writer lease before queueing (0: at once)', num('--lock-timeout', 0), 0)
    .option('--no-queue', 'while another process (a watcher) holds the writer lease: exit 1 naming it, instead of queueing the revert for it')
    .option('--queue-timeout <seconds>', 'queued: wait at most this long for the lease holder to carry it out (a request still queued then is cancelled)', num('--queue-timeout', 0))
    .option('--json', 'print the plan and the outcome as JSON'))
    .action(async (name: string, o) => {
      process.exitCode = await (await import('./commands/snapshot.js')).runSnapshotRevert(name, o);
    });

  return program;
}
