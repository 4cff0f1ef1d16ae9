import { homedir } from 'node:os';
import { isAbsolute, join } from 'node:path';

/**
 * Default location of the state DB: `/var/lib/virtform/state.db` for root, else
 * `$XDG_DATA_HOME/virtform/state.db` (ignored unless absolute, per the XDG spec), falling back to
 * `~/.local/share/virtform/state.db`.
 */
export function defaultDbPath(env: NodeJS.ProcessEnv = process.env, uid: number = process.getuid?.() ?? -1): string {
  if (uid === 0) return '/var/lib/virtform/state.db';
  const xdg = env.XDG_DATA_HOME;
  if (xdg && isAbsolute(xdg)) return join(xdg, 'virtform', 'state.db');
  const home = env.HOME && isAbsolute(env.HOME) ? env.HOME : homedir();
  return join(home, '.local', 'share', 'virtform', 'state.db');
}
