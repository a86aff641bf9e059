/**
 * Untrusted text on its way to a terminal. Process names (set by any process with `prctl`), pod
 * logs, an endpoint's or API server's error body, config-file contents: printed raw, an escape
 * sequence in them can recolour, clear or rewrite the screen, and a newline can forge a line of
 * the output (an extra socket in `ports scan`, a fake "success" in a summary).
 *
 * Every human-readable output passes each value it did not write itself through
 * {@link escapeControl}; JSON output needs nothing more than JSON's own escaping.
 */

/**
 * C0 controls (newline and tab included), DEL, C1 controls, the Unicode line and paragraph
 * separators, and the bidirectional overrides and isolates that can reorder what a line shows.
 */
// biome-ignore lint/suspicious/noControlCharactersInRegex: this pattern exists to find the control characters it escapes
const CONTROL = /[\u0000-\u001f\u007f-\u009f\u2028\u2029\u202a-\u202e\u2066-\u2069]/g;

const NAMED: Readonly<Record<string, string>> = { '\n': '\\n', '\r': '\\r', '\t': '\\t', '\u001b': '\\e' };

/**
 * `text` with every control character made visible: `\n`, `\r`, `\t`, `\e` (escape) or `\xNN` /
 * `\uNNNN`, so one value stays on one line and cannot drive the terminal. Printable text,
 * including non-ASCII letters, is unchanged.
 */
export function escapeControl(text: string): string {
  return text.replace(CONTROL, (char) => {
    const named = NAMED[char];
    if (named) return named;
    const code = char.charCodeAt(0);
    return code <= 0xff ? `\\x${code.toString(16).padStart(2, '0')}` : `\\u${code.toString(16).padStart(4, '0')}`;
  });
}

/**
 * A message of several lines for a terminal: each line is escaped on its own, and the line
 * breaks between them are kept. For texts whose line structure is ours (a summary, a help
 * text) but whose pieces may not be.
 */
export function escapeControlKeepingLines(text: string): string {
  return text.split('\n').map(escapeControl).join('\n');
}
