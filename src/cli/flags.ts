/**
 * The CLI side of the flag system (src/flags.ts): the global flags every command accepts, and
 * {@link addFlags}, which turns a flag table into commander options. Commands own no flags of
 * their own: they walk the tables of the capability they run (src/<capability>/flags.ts,
 * src/operator/flags.ts).
 *
 * This module must stay cheap to import: `crowsnest --help` loads it. Only Node built-ins,
 * commander, type-only imports and modules that are themselves cheap.
 */
import { Option, type Command } from 'commander';
import { describeFlag, flag, FlagResolver, type Flag, type FlagSources, type FlagValue } from '../flags.ts';
import { oneOf, parseNonEmpty } from '../flag-values.ts';
import type { LogFormat, LogLevel } from '../observe/logger.ts';

/** Levels accepted by `--log-level`, most verbose first. */
export const logLevels: readonly LogLevel[] = ['trace', 'debug', 'info', 'warn', 'error'];
/** Formats accepted by `--log-format`. */
export const logFormats: readonly LogFormat[] = ['json', 'text'];

/** Options every command accepts. */
export interface GlobalOptions {
  /** Explicit kubeconfig path (`--kubeconfig`); `undefined` lets the loader search. */
  readonly kubeconfig?: string;
  /** kubeconfig context to use; `undefined` means the file's current context. */
  readonly context?: string;
  /** Default `info`. */
  readonly logLevel: LogLevel;
  /** Default `text` when stderr is a terminal (a human is watching), else `json` (a collector is). */
  readonly logFormat: LogFormat;
}

/**
 * The global flags. `--kubeconfig` has no CROWSNEST_ variable: the kubeconfig loader applies the
 * standard `KUBECONFIG` with kubectl's list semantics (several files, merged).
 */
export const globalFlags = {
  kubeconfig: flag({
    name: 'kubeconfig',
    valueName: '<path>',
    description: 'path to a kubeconfig file',
    defaultText: '$KUBECONFIG, else in-cluster config, else ~/.kube/config',
    parse: parseNonEmpty,
    env: false,
  }),
  context: flag({
    name: 'context',
    valueName: '<name>',
    description: 'kubeconfig context to use',
    defaultText: 'the current context',
    parse: parseNonEmpty,
    env: false,
  }),
  logLevel: flag({
    name: 'log-level',
    valueName: '<level>',
    description: `log verbosity: ${logLevels.join(', ')}`,
    default: 'info',
    parse: oneOf(logLevels),
  }),
  logFormat: flag({
    name: 'log-format',
    valueName: '<format>',
    description: `log format: ${logFormats.join(' or ')}`,
    defaultText: 'text when stderr is a terminal, else json',
    parse: oneOf(logFormats),
  }),
};

/**
 * Resolves the global options.
 *
 * @param stderrIsTTY whether stderr is a terminal; picks the default log format.
 * @throws OptionError for a bad level or format.
 */
export function resolveGlobalOptions(sources: FlagSources, stderrIsTTY: boolean): GlobalOptions {
  const flags = new FlagResolver(sources);
  return {
    kubeconfig: flags.get(globalFlags.kubeconfig),
    context: flags.get(globalFlags.context),
    logLevel: flags.get(globalFlags.logLevel),
    logFormat: flags.get(globalFlags.logFormat, stderrIsTTY ? 'text' : 'json'),
  };
}

/**
 * Declares every flag of `table` on `command`, in table order (a negatable switch gets its
 * `--no-<name>` right after it), with its help text (default and environment variables).
 *
 * Commander gets no defaults: the resolver applies them after the environment and config
 * directory, which a commander default would hide.
 *
 * @returns a reader of the values given on the command line, keyed by long flag name
 *   (`undefined` for flags not given), for {@link FlagSources.flags}.
 */
export function addFlags(command: Command, table: readonly Flag<unknown>[]): () => Record<string, FlagValue | undefined> {
  const attributes = new Map<string, string>();
  for (const definition of table) {
    const short = definition.short !== undefined ? `-${definition.short}, ` : '';
    const option = new Option(`${short}--${definition.name} ${definition.valueName}`, describeFlag(definition));
    if (definition.choices) option.choices(definition.choices);
    attributes.set(definition.name, option.attributeName());
    command.addOption(option);
    if (definition.negatable) {
      command.addOption(new Option(`--no-${definition.name}`, definition.negatedDescription ?? `same as --${definition.name}=false`));
    }
  }
  return () => {
    const values: Record<string, FlagValue | undefined> = {};
    for (const [name, attribute] of attributes) values[name] = command.getOptionValue(attribute) as FlagValue | undefined;
    return values;
  };
}
