/**
 * Parsers of flag values shared by the flag tables (src/flags.ts): each takes what the command
 * line, an environment variable or a config file gave and returns the typed value, or throws an
 * Error saying what is wrong (the resolver adds the flag, the value and where it came from).
 *
 * Cheap to import (`crowsnest --help` loads it): no imports at all.
 */
import type { FlagValue } from './flags.ts';

export function asString(value: FlagValue): string {
  if (typeof value !== 'string') throw new Error('a value is required');
  return value;
}

/** Milliseconds per Go duration unit. `µ` (U+00B5) and `μ` (U+03BC) are both accepted, as in Go. */
const MS_PER_UNIT: Readonly<Record<string, number>> = {
  ns: 1e-6,
  us: 1e-3,
  'µs': 1e-3,
  'μs': 1e-3,
  ms: 1,
  s: 1_000,
  m: 60_000,
  h: 3_600_000,
};

const VALID_UNITS = 'ns, us, ms, s, m, h';

/**
 * Parses a Go-style duration (`"15s"`, `"1m30s"`, `"500ms"`, `"1.5h"`, `"-2s"`, `"0"`) into
 * milliseconds, following `time.ParseDuration`: a sequence of decimal numbers each with a unit;
 * a bare `0` is the only number allowed without one.
 *
 * @returns the duration in milliseconds; may be fractional (`"1500us"` → 1.5) or negative.
 * @throws Error naming the input and what is wrong with it.
 */
export function parseDuration(input: string): number {
  let rest = input;
  let sign = 1;
  if (rest.startsWith('-') || rest.startsWith('+')) {
    if (rest[0] === '-') sign = -1;
    rest = rest.slice(1);
  }
  if (rest === '0') return 0;
  if (rest === '') throw new Error(`invalid duration "${input}"`);

  let totalMs = 0;
  // Each iteration consumes one `<number><unit>` term.
  const term = /^(\d*)(?:\.(\d*))?([^\d.]*)/;
  while (rest !== '') {
    const match = term.exec(rest);
    const [consumed = '', whole = '', fraction, unit = ''] = match ?? [];
    if (whole === '' && (fraction === undefined || fraction === '')) {
      throw new Error(`invalid duration "${input}"`);
    }
    if (unit === '') throw new Error(`missing unit in duration "${input}" (valid units: ${VALID_UNITS})`);
    const msPerUnit = MS_PER_UNIT[unit];
    if (msPerUnit === undefined) {
      throw new Error(`unknown unit "${unit}" in duration "${input}" (valid units: ${VALID_UNITS})`);
    }
    totalMs += Number(`${whole || '0'}.${fraction ?? ''}0`) * msPerUnit;
    rest = rest.slice(consumed.length);
  }
  if (!Number.isFinite(totalMs)) throw new Error(`duration "${input}" is too large`);
  return sign * totalMs;
}

/** Go's `strconv.ParseBool` spellings, so `--leader-elect=false` behaves as in Go operators. */
const TRUE_WORDS = new Set(['1', 't', 'T', 'true', 'TRUE', 'True']);
const FALSE_WORDS = new Set(['0', 'f', 'F', 'false', 'FALSE', 'False']);

export function parseBool(value: FlagValue): boolean {
  if (typeof value === 'boolean') return value;
  if (TRUE_WORDS.has(value)) return true;
  if (FALSE_WORDS.has(value)) return false;
  throw new Error('expected true or false');
}

/** A duration above zero, in milliseconds. */
export function parsePositiveDurationMs(value: FlagValue): number {
  const ms = parseDuration(asString(value));
  if (ms <= 0) throw new Error('must be greater than zero');
  return ms;
}

/** A duration of zero or more, in milliseconds. */
export function parseNonNegativeDurationMs(value: FlagValue): number {
  const ms = parseDuration(asString(value));
  if (ms < 0) throw new Error('must not be negative');
  return ms;
}

export function parsePositiveInteger(value: FlagValue): number {
  const text = asString(value);
  if (!/^\d+$/.test(text) || Number(text) < 1) throw new Error('must be a whole number of at least 1');
  return Number(text);
}

export function parseNonNegativeInteger(value: FlagValue): number {
  const text = asString(value).trim();
  if (!/^\d+$/.test(text)) throw new Error('must be a whole number (0 or more)');
  return Number(text);
}

export function parsePositiveNumber(value: FlagValue): number {
  const number = Number(asString(value).trim());
  if (!(number > 0) || !Number.isFinite(number)) throw new Error('must be a number greater than zero');
  return number;
}

/** A TCP port to listen on, 1–65535. */
export function parsePort(value: FlagValue): number {
  const text = asString(value);
  if (!/^\d+$/.test(text) || Number(text) < 1 || Number(text) > 65_535) throw new Error('must be a port number from 1 to 65535');
  return Number(text);
}

export function parseNonEmpty(value: FlagValue): string {
  const text = asString(value);
  if (text.trim() === '') throw new Error('must not be empty');
  return text;
}

/** A report directory: any path but the empty one (which would mean "nowhere"). */
export function parseReportDir(value: FlagValue): string {
  const text = asString(value).trim();
  if (text === '') throw new Error('must not be empty (the default is ./reports)');
  return text;
}

const DNS1123_LABEL = /^[a-z0-9]([-a-z0-9]*[a-z0-9])?$/;
const DNS1123_LABEL_MAX_LENGTH = 63;
const DNS1123_SUBDOMAIN = /^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$/;
const DNS1123_SUBDOMAIN_MAX_LENGTH = 253;

export function parseNamespace(value: FlagValue): string {
  const text = asString(value);
  if (text.length > DNS1123_LABEL_MAX_LENGTH || !DNS1123_LABEL.test(text)) {
    throw new Error('must be a namespace name (lowercase letters, digits and "-", at most 63 characters)');
  }
  return text;
}

export function parseObjectName(value: FlagValue): string {
  const text = asString(value);
  if (text.length > DNS1123_SUBDOMAIN_MAX_LENGTH || !DNS1123_SUBDOMAIN.test(text)) {
    throw new Error('must be an object name (lowercase letters, digits, "-" and ".")');
  }
  return text;
}

/**
 * A list value: comma- or newline-separated, `#` comments and YAML-style `- ` bullets allowed,
 * so a ConfigMap value can be written either way. The empty string is the empty list.
 */
export function parseList(value: FlagValue): string[] {
  return asString(value)
    .split(/[\n,]/)
    .map((item) => item.replace(/#.*$/, '').trim().replace(/^-\s*/, '').trim())
    .filter((item) => item !== '');
}

/** A parser accepting exactly one of `choices`. */
export function oneOf<T extends string>(choices: readonly T[]): (value: FlagValue) => T {
  return (value) => {
    const text = asString(value);
    const found = choices.find((choice) => choice === text);
    if (found === undefined) throw new Error(`must be one of ${choices.join(', ')}`);
    return found;
  };
}

const KI = 1024;
const MI = KI * KI;
const SIZE_UNITS: Readonly<Record<string, number>> = { '': 1, k: 1000, K: 1000, M: 1e6, G: 1e9, Ki: KI, Mi: MI, Gi: MI * KI };

/** `4Mi`, `500Ki`, `1M`, `65536` — Kubernetes quantity suffixes, positive whole bytes. */
export function parseByteSize(value: FlagValue): number {
  const match = /^(\d+(?:\.\d+)?)\s*([kKMG]i?|)$/.exec(asString(value).trim());
  const unit = match ? SIZE_UNITS[match[2] as string] : undefined;
  if (!match || unit === undefined) throw new Error('must be a size in bytes like 65536, 512Ki or 4Mi');
  const bytes = Math.floor(Number(match[1]) * unit);
  if (bytes < 1) throw new Error('must be at least 1 byte');
  return bytes;
}

/** An `https://` URL (in-cluster callers send their token only over TLS), without trailing slashes. */
export function parseHttpsUrl(value: FlagValue): string {
  const text = asString(value).trim();
  let url: URL;
  try {
    url = new URL(text);
  } catch {
    throw new Error('must be a URL like https://host:port');
  }
  if (url.protocol !== 'https:') throw new Error('must be an https:// URL (callers send their token only over TLS)');
  return text.replace(/\/+$/, '');
}

/** CPU and memory requests and limits of a container, as the Pod API writes them. */
export interface ResourceRequirements {
  readonly requests?: Readonly<Record<string, string>>;
  readonly limits?: Readonly<Record<string, string>>;
}

const QUANTITY = /^[+]?([0-9]+(\.[0-9]*)?|\.[0-9]+)([eE][-+]?[0-9]+|[KMGTPE]i?|[mkMGTPE]|[numkMGTPE]?)?$/;

/**
 * `{"requests":{"cpu":"10m","memory":"64Mi"},"limits":{"memory":"128Mi"}}`, checked: only
 * `requests` and `limits`, each a map of resource names to Kubernetes quantities.
 */
export function parseResourceRequirements(flagValue: FlagValue): ResourceRequirements {
  const text = asString(flagValue);
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch {
    throw new Error(`must be JSON like {"requests":{"cpu":"10m","memory":"64Mi"},"limits":{"memory":"128Mi"}}`);
  }
  if (typeof value !== 'object' || value === null || Array.isArray(value)) throw new Error('must be a JSON object with requests and/or limits');
  const result: { requests?: Record<string, string>; limits?: Record<string, string> } = {};
  for (const [section, entries] of Object.entries(value)) {
    if (section !== 'requests' && section !== 'limits') throw new Error(`unknown key ${JSON.stringify(section)}: only requests and limits`);
    if (typeof entries !== 'object' || entries === null || Array.isArray(entries)) throw new Error(`${section} must be an object of resource: quantity`);
    const quantities: Record<string, string> = {};
    for (const [resource, quantity] of Object.entries(entries as Record<string, unknown>)) {
      const spelled = typeof quantity === 'number' ? String(quantity) : quantity;
      if (typeof spelled !== 'string' || !QUANTITY.test(spelled)) throw new Error(`${section}.${resource}: ${JSON.stringify(quantity)} is not a Kubernetes quantity (e.g. 10m, 64Mi)`);
      quantities[resource] = spelled;
    }
    result[section] = quantities;
  }
  return result;
}
