/**
 * The patterns a log watch counts, compiled so no pattern can stall the agent: a log line is
 * attacker-controlled text (anything in a pod may print anything), and a backtracking regex such as
 * `(a+)+$` takes exponential time on the right line. Every pattern is compiled for V8's linear-time
 * engine (the `l` flag, enabled at start by {@link enableLinearRegExp}), which runs in time linear
 * in the line and refuses what it cannot run so: backreferences, lookahead and lookbehind, inline
 * modifiers, and the `i` flag. Patterns are also capped at {@link MAX_PATTERN_LENGTH} characters.
 *
 * RE2's leading `(?i)` (case-insensitive, as in the GuardPolicy examples) is honoured by rewriting
 * the pattern's letters into two-case classes (`e` → `[eE]`), which the linear engine runs; so is a
 * pattern that is one `(?i:...)` group as a whole, the form the operator sends for a policy's
 * `ignoreCase` (api.ts errorLogPattern).
 */
import { setFlagsFromString } from 'node:v8';

export const MAX_PATTERN_LENGTH = 1024;

let linearEnabled = false;

/** Turns on V8's linear-time regexp engine (the `l` flag) for this process; idempotent. */
export function enableLinearRegExp(): void {
  if (linearEnabled) return;
  setFlagsFromString('--enable-experimental-regexp-engine');
  linearEnabled = true;
}

/** A pattern the agent will not run; the message says why, for the log and the operator. */
export class PatternError extends Error {
  override readonly name = 'PatternError';
}

/**
 * Compiles a watch's pattern for linear-time matching.
 *
 * @throws PatternError for a pattern that is too long, not a valid regular expression, or uses a
 *   construct only a backtracking engine runs (backreference, lookaround, inline modifier).
 */
export function compilePattern(pattern: string): RegExp {
  enableLinearRegExp();
  if (pattern.length > MAX_PATTERN_LENGTH) throw new PatternError(`pattern is ${pattern.length} characters long; at most ${MAX_PATTERN_LENGTH} are accepted`);
  let source = pattern;
  if (source.startsWith('(?i)')) source = foldCase(source.slice(4));
  else if (wholeIgnoreCaseGroup(source) !== undefined) source = `(?:${foldCase(wholeIgnoreCaseGroup(source)!)})`;
  if (/\\[1-9]|\\k</.test(source)) throw new PatternError(`pattern ${JSON.stringify(pattern)} uses a backreference, which cannot be matched in linear time`);
  if (/\(\?<?[=!]/.test(source)) throw new PatternError(`pattern ${JSON.stringify(pattern)} uses a lookahead or lookbehind, which cannot be matched in linear time`);
  try {
    return new RegExp(source, 'l');
  } catch (err) {
    const message = (err as Error).message;
    if (/linear time/.test(message)) throw new PatternError(`pattern ${JSON.stringify(pattern)} cannot be matched in linear time (backreferences, lookarounds and inline modifiers other than a leading (?i) are not supported)`);
    throw new PatternError(`pattern ${JSON.stringify(pattern)} is not a valid regular expression: ${message.replace(/^Invalid regular expression: /, '')}`);
  }
}

/**
 * The inside of `source` when `source` is one `(?i:...)` group as a whole: its first `(` closes at
 * its last `)` exactly when the inside is a regular expression of its own (`(?i:a)|(b)` has the
 * inside `a)|(b`, which is not).
 */
function wholeIgnoreCaseGroup(source: string): string | undefined {
  if (!source.startsWith('(?i:') || !source.endsWith(')')) return undefined;
  const inside = source.slice(4, -1);
  try {
    new RegExp(inside);
    return inside;
  } catch {
    return undefined;
  }
}

const LETTER = /[a-zA-Z]/;

/**
 * `source` with each ASCII letter matching both cases: `ab` → `[aA][bB]`, `[a-c]` → `[a-cA-C]`.
 * Escapes (`\d`, `\x41`, `\u{...}`, `\p{...}`) are kept as written. Letters outside ASCII keep
 * their case (RE2's (?i) folds them too; the linear engine has no case folding to lean on).
 */
export function foldCase(source: string): string {
  let out = '';
  let inClass = false;
  for (let i = 0; i < source.length; i++) {
    const c = source[i]!;
    if (c === '\\') {
      out += escapeAt(source, i);
      i += escapeAt(source, i).length - 1;
      continue;
    }
    if (inClass) {
      if (c === ']') {
        inClass = false;
        out += c;
      } else if (LETTER.test(c) && source[i + 1] === '-' && LETTER.test(source[i + 2] ?? '') && sameCase(c, source[i + 2]!)) {
        const end = source[i + 2]!;
        out += `${c}-${end}${swapCase(c)}-${swapCase(end)}`;
        i += 2;
      } else {
        out += LETTER.test(c) ? `${c}${swapCase(c)}` : c;
      }
      continue;
    }
    if (c === '[') {
      inClass = true;
      out += c;
      if (source[i + 1] === '^') out += source[++i];
      // A `]` first in a class is a literal in RE2; JavaScript reads it as an empty class.
      continue;
    }
    if (c === '{') {
      // A quantifier's digits or a literal brace: no letters inside either.
      const close = source.indexOf('}', i);
      if (close !== -1 && /^\{\d+(,\d*)?\}$/.test(source.slice(i, close + 1))) {
        out += source.slice(i, close + 1);
        i = close;
        continue;
      }
    }
    if (c === '(' && source[i + 1] === '?') {
      // A group's marker (`(?:`, `(?<name>`): its letters are a name, not text to match.
      const named = /^\(\?<([A-Za-z_$][\w$]*)>/.exec(source.slice(i));
      const marker = named ? named[0] : source.slice(i, i + 3);
      out += marker;
      i += marker.length - 1;
      continue;
    }
    out += LETTER.test(c) ? `[${c}${swapCase(c)}]` : c;
  }
  return out;
}

/** The whole escape sequence starting at `source[i]` (a backslash). */
function escapeAt(source: string, i: number): string {
  const next = source[i + 1] ?? '';
  const braced = /^\\[pPu]\{[^}]*\}/.exec(source.slice(i));
  if (braced) return braced[0];
  if (next === 'x') return source.slice(i, i + 4);
  if (next === 'u') return source.slice(i, i + 6);
  if (next === 'c') return source.slice(i, i + 3);
  return source.slice(i, i + 2);
}

function swapCase(c: string): string {
  return c === c.toLowerCase() ? c.toUpperCase() : c.toLowerCase();
}

function sameCase(a: string, b: string): boolean {
  return (a === a.toLowerCase()) === (b === b.toLowerCase());
}
