import { homedir } from 'node:os';
import { describe, expect, it } from 'vitest';
import { defaultDbPath } from '../../../src/state/index.js';

describe('defaultDbPath', () => {
  it('uses /var/lib/virtform for root regardless of XDG_DATA_HOME', () => {
    expect(defaultDbPath({ XDG_DATA_HOME: '/home/x/.data', HOME: '/root' }, 0)).toBe('/var/lib/virtform/state.db');
    expect(defaultDbPath({}, 0)).toBe('/var/lib/virtform/state.db');
  });

  it('uses $XDG_DATA_HOME for non-root when set', () => {
    expect(defaultDbPath({ XDG_DATA_HOME: '/home/u/data', HOME: '/home/u' }, 1000)).toBe('/home/u/data/virtform/state.db');
  });

  it('falls back to ~/.local/share when XDG_DATA_HOME is unset, empty or relative', () => {
    expect(defaultDbPath({ HOME: '/home/u' }, 1000)).toBe('/home/u/.local/share/virtform/state.db');
    expect(defaultDbPath({ HOME: '/home/u', XDG_DATA_HOME: '' }, 1000)).toBe('/home/u/.local/share/virtform/state.db');
    expect(defaultDbPath({ HOME: '/home/u', XDG_DATA_HOME: 'rel/data' }, 1000)).toBe('/home/u/.local/share/virtform/state.db');
  });

  it('uses the OS home directory when HOME is unset', () => {
    expect(defaultDbPath({}, 1000)).toBe(`${homedir()}/.local/share/virtform/state.db`);
  });

  it('defaults to the current process env and uid', () => {
    const expected = process.getuid?.() === 0 ? '/var/lib/virtform/state.db' : defaultDbPath(process.env, process.getuid?.() ?? -1);
    expect(defaultDbPath()).toBe(expected);
  });
});
