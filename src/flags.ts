/**
 * The one flag system of `crowsnest`: a flag is declared once, in a table beside the code that
 * uses it (src/<capability>/flags.ts, src/operator/flags.ts, src/cli/flags.ts), and that entry
 * is everything the CLI and the resolver need — its name, value placeholder, help text, default,
 * parser, and where else its value may come from.
 *
 * Precedence for every flag: command line > environment (`CROWSNEST_<FLAG>`, then the entry's
 * aliases, e.g. the seeds' `PATH_REPORTS`) > config directory (for commands that read one, one
 * file per key as a mounted ConfigMap) > default. An empty environment variable counts as unset.
 *
 * Resolution is a pure function of its inputs, so every rule is unit-tested without the CLI.
 * Cheap to import (`crowsnest --help` loads it): Node built-ins only.
 */
import { readdirSync, readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';

/**
 * A flag or environment value the user got wrong. The CLI prints `error: <message>` (one line,
 * no stack) and exits with code 2, the conventional "usage error" status.
 */
export class OptionError extends Error {
  /** The long flag the problem is about, e.g. `--lease-duration`. */
  readonly flag: string;

  constructor(flag: string, message: string) {
    super(message);
    this.name = 'OptionError';
    this.flag = flag;
  }
}

/** A value as the command line gives it: a string, or `true`/`false` for a switch. */
export type FlagValue = string | boolean;

/** One long flag: what the CLI declares and what the resolver reads. */
export interface Flag<T> {
  /** Long name without leading dashes, e.g. `metrics-bind-address`. */
  readonly name: string;
  /** A one-letter alias without the dash (`o` for `-o`). */
  readonly short?: string;
  /**
   * Value placeholder for help, with commander's brackets: `<duration>` (required value) or
   * `[bool]` (optional value, for switches that also accept `--flag=false`).
   */
  readonly valueName: string;
  /** One sentence for `--help`, without the default. */
  readonly description: string;
  /**
   * The value used when no source sets one, spelled as a user would type it and parsed by
   * {@link parse} like any other value, so help and behaviour share one source. Flags without
   * one resolve to `undefined`, or to a fallback their resolver computes.
   */
  readonly default?: FlagValue;
  /** The default as help shows it, when {@link default} is absent or needs words. */
  readonly defaultText?: string;
  /** Turns a raw value into the typed one; throws an Error saying what is wrong. */
  readonly parse: (value: FlagValue) => T;
  /**
   * Environment variables read after `CROWSNEST_<NAME>`, in order (the seeds' names);
   * `false`: the flag has no environment variable at all.
   */
  readonly env?: readonly string[] | false;
  /** The file name in the config directory, for commands that read one. */
  readonly configKey?: string;
  /** Further file names read after {@link configKey}, in order (the seeds' ConfigMap keys). */
  readonly configAliases?: readonly string[];
  /** Whether a `--no-<name>` form exists (only for boolean switches). */
  readonly negatable?: boolean;
  /** Help of the `--no-<name>` form; default "same as --<name>=false". */
  readonly negatedDescription?: string;
  /** The only values allowed, checked by the CLI parser (which lists them in help). */
  readonly choices?: readonly string[];
  /** How a bad value is quoted in error messages (e.g. with credentials hidden). */
  readonly showValue?: (text: string) => string;
}

/** A {@link Flag} that always has a value. */
export interface DefaultedFlag<T> extends Flag<T> {
  readonly default: FlagValue;
}

/** Declares a flag; the overloads keep track of whether it has a default. */
export function flag<T>(spec: Flag<T> & { readonly default: FlagValue }): DefaultedFlag<T>;
export function flag<T>(spec: Flag<T>): Flag<T>;
export function flag<T>(spec: Flag<T>): Flag<T> {
  return spec;
}

/** The environment variable that can set flag `name`: `CROWSNEST_<NAME_IN_UPPER_SNAKE>`. */
export function envVarFor(name: string): string {
  return `CROWSNEST_${name.toUpperCase().replaceAll('-', '_')}`;
}

/** Every environment variable that can set `flag`, in the order they are read. */
export function envNamesOf(flag: Flag<unknown>): readonly string[] {
  return flag.env === false ? [] : [envVarFor(flag.name), ...(flag.env ?? [])];
}

/** Help text for a flag: description, default and the environment variables that can set it. */
export function describeFlag(flag: Flag<unknown>): string {
  const defaultText = flag.defaultText ?? (flag.default === undefined ? undefined : String(flag.default));
  const envNames = envNamesOf(flag);
  const notes = [...(defaultText !== undefined ? [`default: ${defaultText}`] : []), ...(envNames.length > 0 ? [`env: ${envNames.join(', ')}`] : [])];
  return notes.length > 0 ? `${flag.description} (${notes.join('; ')})` : flag.description;
}

/** A config directory's files, read (see {@link readConfigDirectory}). */
export interface ConfigDirectory {
  readonly dir: string;
  /** File name → content, trimmed. */
  readonly values: Readonly<Record<string, string>>;
}

/** Where flag values come from. */
export interface FlagSources {
  /**
   * Values given on the command line, keyed by long flag name (`lease-duration`). A boolean
   * switch is `true`/`false`, or a string when written `--flag=value`. Absent or `undefined`
   * means "not given".
   */
  readonly flags: Readonly<Record<string, FlagValue | undefined>>;
  /** The process environment (injected so tests do not touch `process.env`). */
  readonly env: Readonly<Record<string, string | undefined>>;
  /** The command's config directory, when it reads one and it exists. */
  readonly config?: ConfigDirectory;
}

/** A value found for a flag, with where it came from for error messages. */
export interface RawValue {
  readonly value: FlagValue;
  /** `undefined` when set on the command line; else the environment variable or config file. */
  readonly from?: string;
}

/** Resolves flags from {@link FlagSources}: command line > environment > config directory > default. */
export class FlagResolver {
  readonly #sources: FlagSources;

  constructor(sources: FlagSources) {
    this.#sources = sources;
  }

  /** The raw value of `flag` from the first source that sets it, without the default. */
  lookup(flag: Flag<unknown>): RawValue | undefined {
    const fromFlag = this.#sources.flags[flag.name];
    if (fromFlag !== undefined) return { value: fromFlag };
    for (const envVar of envNamesOf(flag)) {
      const value = this.#sources.env[envVar];
      if (value !== undefined && value !== '') return { value, from: envVar };
    }
    const config = this.#sources.config;
    for (const key of [flag.configKey, ...(flag.configAliases ?? [])]) {
      if (key !== undefined && config?.values[key] !== undefined) return { value: config.values[key], from: join(config.dir, key) };
    }
    return undefined;
  }

  /** Whether any source but the default sets `flag`. */
  given(flag: Flag<unknown>): boolean {
    return this.lookup(flag) !== undefined;
  }

  /**
   * The parsed value of `flag`: from its sources, else `fallback` (a raw value computed by the
   * caller, parsed the same way), else the flag's default, else `undefined`.
   *
   * @throws OptionError naming the flag, the value and (unless it was the flag) where it came from.
   */
  get<T>(flag: DefaultedFlag<T>): T;
  get<T>(flag: Flag<T>, fallback: FlagValue): T;
  get<T>(flag: Flag<T>): T | undefined;
  get<T>(flag: Flag<T>, fallback?: FlagValue): T | undefined {
    const raw = this.lookup(flag) ?? (fallback !== undefined ? { value: fallback } : flag.default !== undefined ? { value: flag.default } : undefined);
    return raw === undefined ? undefined : parseFlagValue(flag, raw);
  }
}

/** Parses `raw` with the flag's parser, turning a failure into an {@link OptionError}. */
export function parseFlagValue<T>(flag: Flag<T>, raw: RawValue): T {
  try {
    return flag.parse(raw.value);
  } catch (err) {
    const reason = err instanceof Error ? err.message : String(err);
    const text = String(raw.value);
    const from = raw.from !== undefined ? ` (from ${raw.from})` : '';
    throw new OptionError(`--${flag.name}`, `invalid value "${flag.showValue ? flag.showValue(text) : text}" for --${flag.name}${from}: ${reason}`);
  }
}

/**
 * Reads a config directory: each regular file is a key, its content the value (trimmed). Hidden
 * entries are skipped — a mounted ConfigMap keeps its real files under `..data`.
 * @returns `undefined` when the directory does not exist.
 */
export function readConfigDirectory(dir: string): Record<string, string> | undefined {
  let names: string[];
  try {
    names = readdirSync(dir);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw err;
  }
  const values: Record<string, string> = {};
  for (const name of names) {
    if (name.startsWith('.')) continue;
    const path = join(dir, name);
    // statSync follows the ConfigMap's symlinks; one can dangle for a moment while the kubelet
    // swaps `..data`, so a key that vanished is skipped rather than failing the run.
    const info = statSync(path, { throwIfNoEntry: false });
    if (!info?.isFile()) continue;
    values[name] = readFileSync(path, 'utf8').trim();
  }
  return values;
}
