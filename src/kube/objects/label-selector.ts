/**
 * Label selector syntax, checked the way the API server parses it (apimachinery `labels.Parse`),
 * so a selector that every list would answer with 400 is refused before a run starts, with the
 * reason, instead of ending every type's listing with the same error.
 *
 * Grammar: requirements separated by commas, each one of `key`, `!key`, `key=value`,
 * `key==value`, `key!=value`, `key>integer`, `key<integer`, `key in (v1,v2)`, `key notin (v1)`.
 * The table in test/helpers/label-selectors.ts is checked against this and a real API server.
 * Keys are qualified names (`[prefix/]name`: a DNS subdomain prefix of at most 253 characters,
 * a name of at most 63), values at most 63 characters of `[A-Za-z0-9._-]`, starting and ending
 * with a letter or digit (or empty). Blanks between tokens are ignored. The empty selector
 * matches everything.
 */

type Token =
  | { readonly kind: 'identifier'; readonly text: string; readonly at: number }
  | { readonly kind: 'symbol'; readonly text: '!' | '=' | '==' | '!=' | '<' | '>' | ',' | '(' | ')'; readonly at: number }
  | { readonly kind: 'end'; readonly at: number };

const SYMBOL_CHARS = '!=<>,()';

function tokenize(text: string): Token[] {
  const tokens: Token[] = [];
  let i = 0;
  while (i < text.length) {
    const char = text[i]!;
    if (/\s/.test(char)) {
      i++;
      continue;
    }
    if (SYMBOL_CHARS.includes(char)) {
      const two = text.slice(i, i + 2);
      if (two === '==' || two === '!=') {
        tokens.push({ kind: 'symbol', text: two, at: i });
        i += 2;
      } else {
        tokens.push({ kind: 'symbol', text: char as '!' | '=' | '<' | '>' | ',' | '(' | ')', at: i });
        i++;
      }
      continue;
    }
    const start = i;
    while (i < text.length && !/\s/.test(text[i]!) && !SYMBOL_CHARS.includes(text[i]!)) i++;
    tokens.push({ kind: 'identifier', text: text.slice(start, i), at: start });
  }
  tokens.push({ kind: 'end', at: text.length });
  return tokens;
}

const NAME_MAX = 63;
const PREFIX_MAX = 253;
const NAME = /^[A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?$/;
const DNS_SUBDOMAIN = /^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$/;

function keyProblem(key: string): string | undefined {
  const parts = key.split('/');
  if (parts.length > 2) return `label key "${key}" has more than one "/"`;
  const [prefix, name] = parts.length === 2 ? parts : [undefined, parts[0]!];
  if (prefix !== undefined && (prefix.length === 0 || prefix.length > PREFIX_MAX || !DNS_SUBDOMAIN.test(prefix))) {
    return `label key prefix "${prefix}" must be a DNS subdomain (lowercase letters, digits, "-" and ".", at most ${PREFIX_MAX} characters)`;
  }
  if (name === undefined || name.length === 0 || name.length > NAME_MAX || !NAME.test(name)) {
    return `label key "${key}" must be at most ${NAME_MAX} characters of letters, digits, "-", "_" and ".", starting and ending with a letter or digit`;
  }
  return undefined;
}

function valueProblem(value: string): string | undefined {
  if (value === '') return undefined;
  if (value.length > NAME_MAX || !NAME.test(value)) {
    return `label value "${value}" must be at most ${NAME_MAX} characters of letters, digits, "-", "_" and ".", starting and ending with a letter or digit`;
  }
  return undefined;
}

/**
 * Checks `text` as a label selector.
 * @throws Error saying what is wrong and where (a 1-based character position).
 */
export function checkLabelSelector(text: string): void {
  const tokens = tokenize(text);
  let index = 0;
  const peek = (): Token => tokens[index]!;
  const next = (): Token => tokens[index++]!;
  const fail = (token: Token, reason: string): never => {
    throw new Error(`${reason} at position ${token.at + 1}`);
  };
  const identifier = (what: string): string => {
    const token = next();
    if (token.kind !== 'identifier') fail(token, `expected ${what}, found ${describe(token)}`);
    return (token as { text: string }).text;
  };
  const checked = (problem: string | undefined, token: Token): void => {
    if (problem) fail(token, problem);
  };

  if (peek().kind === 'end') return;
  for (;;) {
    const start = peek();
    if (start.kind === 'symbol' && start.text === '!') {
      next();
      const keyToken = peek();
      checked(keyProblem(identifier('a label key after "!"')), keyToken);
    } else {
      const keyToken = peek();
      const key = identifier('a label key');
      checked(keyProblem(key), keyToken);
      const op = peek();
      if (op.kind === 'symbol' && (op.text === '=' || op.text === '==' || op.text === '!=')) {
        next();
        const valueToken = peek();
        // `key=` (empty value) is allowed: the value token is then absent.
        if (valueToken.kind === 'identifier') checked(valueProblem(identifier('a value')), valueToken);
      } else if (op.kind === 'symbol' && (op.text === '<' || op.text === '>')) {
        next();
        const valueToken = peek();
        const value = identifier(`an integer after "${op.text}"`);
        // A label value that is an integer: no sign, no fraction.
        if (!/^\d+$/.test(value)) fail(valueToken, `"${op.text}" needs a whole number, found "${value}"`);
      } else if (op.kind === 'identifier' && (op.text === 'in' || op.text === 'notin')) {
        next();
        const open = next();
        if (open.kind !== 'symbol' || open.text !== '(') fail(open, `expected "(" after "${op.text}", found ${describe(open)}`);
        // Values may be empty, the list too (`in ()`): the API server accepts both.
        for (;;) {
          const token = peek();
          if (token.kind === 'identifier') checked(valueProblem(identifier('a value')), token);
          const separator = next();
          if (separator.kind === 'symbol' && separator.text === ')') break;
          if (separator.kind !== 'symbol' || separator.text !== ',') fail(separator, `expected "," or ")" in the value list, found ${describe(separator)}`);
        }
      } else if (!(op.kind === 'end' || (op.kind === 'symbol' && op.text === ','))) {
        fail(op, `expected an operator (=, ==, !=, in, notin, <, >) or "," after "${key}", found ${describe(op)}`);
      }
    }
    const after = next();
    if (after.kind === 'end') return;
    if (after.kind !== 'symbol' || after.text !== ',') fail(after, `expected "," between requirements, found ${describe(after)}`);
  }
}

function describe(token: Token): string {
  if (token.kind === 'end') return 'the end';
  return `"${token.text}"`;
}
