/**
 * The flags of `crowsnest guard convert`. It reads files and writes stdout only: no environment,
 * no cluster.
 */
import { flag, FlagResolver, OptionError, type Flag, type FlagSources, type FlagValue } from '../flags.ts';
import { oneOf, parseBool } from '../flag-values.ts';

const CONVERT_OUTPUTS = ['yaml', 'json'] as const;
export type ConvertOutput = (typeof CONVERT_OUTPUTS)[number];

function parseFilename(value: FlagValue): string {
  if (typeof value !== 'string' || value.trim() === '') throw new Error('must name a file, or - for stdin');
  return value;
}

export const guardConvertFlags = {
  filename: flag({
    name: 'filename', short: 'f', valueName: '<file>',
    description: 'the Receivers or PolicyDefinitions to convert (YAML or JSON, one or more documents, or a List); - reads stdin',
    env: false, parse: parseFilename,
  }),
  enforce: flag({
    name: 'enforce', valueName: '[bool]',
    description: 'write policies that act (spec.dryRun: false) instead of dry runs that only record what they would do',
    default: false, env: false, parse: parseBool,
  }),
  output: flag({ name: 'output', short: 'o', valueName: '<format>', description: 'output format', default: 'yaml', choices: CONVERT_OUTPUTS, env: false, parse: oneOf<ConvertOutput>(CONVERT_OUTPUTS) }),
};

export const guardConvertFlagList: readonly Flag<unknown>[] = Object.values(guardConvertFlags);

export interface GuardConvertOptions {
  readonly filename: string;
  readonly enforce: boolean;
  readonly output: ConvertOutput;
}

/** @throws OptionError naming the offending flag. */
export function resolveGuardConvertOptions(sources: FlagSources): GuardConvertOptions {
  const flags = new FlagResolver(sources);
  const filename = flags.get(guardConvertFlags.filename);
  if (filename === undefined) throw new OptionError('--filename', '--filename is required: name the file to convert (-f receiver.yaml), or - for stdin');
  return { filename, enforce: flags.get(guardConvertFlags.enforce), output: flags.get(guardConvertFlags.output) };
}
