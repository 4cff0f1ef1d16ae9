/** Structured logs: one JSON object per line, `{"ts","level","msg",...fields}`. */
import { printable } from '../util/printable.js';

export type LogLevel = 'debug' | 'info' | 'warn' | 'error';

const RANK: Record<LogLevel, number> = { debug: 10, info: 20, warn: 30, error: 40 };

export function isLogLevel(v: unknown): v is LogLevel {
  return typeof v === 'string' && v in RANK;
}

export interface Logger {
  debug(msg: string, fields?: Record<string, unknown>): void;
  info(msg: string, fields?: Record<string, unknown>): void;
  warn(msg: string, fields?: Record<string, unknown>): void;
  error(msg: string, fields?: Record<string, unknown>): void;
}

function safe(v: unknown): unknown {
  if (v instanceof Error) return { name: v.name, message: v.message };
  if (typeof v === 'bigint') return v.toString();
  return v;
}

export function jsonLogger(opts: { level?: LogLevel; write?: (line: string) => void; now?: () => Date } = {}): Logger {
  const min = RANK[opts.level ?? 'info'];
  const write = opts.write ?? ((line: string) => void process.stderr.write(line));
  const now = opts.now ?? (() => new Date());
  const log = (level: LogLevel) => (msg: string, fields: Record<string, unknown> = {}): void => {
    if (RANK[level] < min) return;
    const rec: Record<string, unknown> = { ts: now().toISOString(), level, msg };
    for (const [k, v] of Object.entries(fields)) if (v !== undefined && !(k in rec)) rec[k] = safe(v);
    let line: string;
    try {
      line = JSON.stringify(rec);
    } catch { // safe-catch: fields that JSON cannot carry: the line is logged without them, saying so
      line = JSON.stringify({ ts: rec.ts, level, msg, note: 'fields not serializable' });
    }
    write(`${printable(line)}\n`); // JSON: \uXXXX escapes read back as the same characters
  };
  return { debug: log('debug'), info: log('info'), warn: log('warn'), error: log('error') };
}

export const silentLogger: Logger = { debug() {}, info() {}, warn() {}, error() {} };
