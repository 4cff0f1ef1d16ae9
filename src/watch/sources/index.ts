/** The watcher's input sources; each feeds the one queue (see ./types.ts for adding another). */
export type { Source, Enqueue } from './types.js';
export { ManifestFolderSource, isIgnoredPath, type ManifestFolderOptions } from './manifest-folder.js';
export { LifecycleEventSource } from './libvirt-events.js';
export { ResyncSource } from './resync.js';
export { HostConnection, type ConnectionState, type ConnectionInfo, type ConnectHook, type HostConnectionOptions } from './connection.js';
export { GitRepositorySource, type GitRepositorySourceOptions } from './git-repository.js';
export { SuspendSource } from './suspend.js';
export { RequestSource } from './requests.js';
