/**
 * Text from manifests, file names and hosts made safe to print on a terminal or in a log: every
 * control character (C0 but newline where a caller keeps lines, DEL, C1 such as the 8-bit CSI
 * U+009B) and every bidirectional-override character is written as `\uXXXX`, so a file name or a
 * value can neither recolour nor retitle the terminal, nor reorder what is shown. The one helper
 * for every place that prints a file name or a manifest value: manifest errors, the plan, apply
 * progress, the watcher's log lines. Written by hand: a one-line regex (strip-ansi and friends
 * remove sequences rather than show them, and miss C1 and bidi controls).
 */
const UNSAFE = /[\u0000-\u001f\u007f-\u009f\u061c\u200e\u200f\u202a-\u202e\u2066-\u2069]/g;
const UNSAFE_KEEP_NEWLINES = /[\u0000-\u0009\u000b-\u001f\u007f-\u009f\u061c\u200e\u200f\u202a-\u202e\u2066-\u2069]/g;

const escape = (c: string): string => `\\u${c.charCodeAt(0).toString(16).padStart(4, '0')}`;

/** `text` with control and bidi characters as `\uXXXX` (newlines too, unless `keepNewlines`). */
export function printable(text: string, opts: { keepNewlines?: boolean } = {}): string {
  return text.replace(opts.keepNewlines ? UNSAFE_KEEP_NEWLINES : UNSAFE, escape);
}
