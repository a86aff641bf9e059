/**
 * `crowsnest guard`: the commands around GuardPolicies that run outside the operator. `convert`
 * turns the policy framework's Receivers into GuardPolicies.
 *
 * Imported only when the command line names `guard` (see `main.ts`).
 */
import { readFile } from 'node:fs/promises';
import type { Command } from 'commander';
import { EXIT_OK, EXIT_USAGE, requireGlobals, type CliIO, type RunState } from './command.ts';
import { guardConvertFlagList, resolveGuardConvertOptions } from '../guard/convert-flags.ts';
import { escapeControl } from '../terminal-text.ts';
import { addFlags } from './flags.ts';

/** Adds the subcommands to the `guard` command (named and described by `main.ts`). */
export function defineGuardCommand(guard: Command, io: CliIO, state: RunState): void {
  addConvertCommand(guard, io, state);
}

function addConvertCommand(guard: Command, io: CliIO, state: RunState): void {
  const command = guard
    .command('convert')
    .description("turn the policy framework's Receivers (and PolicyDefinitions) into GuardPolicies, printed to stdout for kubectl apply")
    .addHelpText('after', CONVERT_HELP);
  const flagValues = addFlags(command, guardConvertFlagList);

  command.action(async () => {
    requireGlobals(state);
    const options = resolveGuardConvertOptions({ flags: flagValues(), env: io.env });
    const source = options.filename === '-' ? 'stdin' : options.filename;
    let text: string;
    try {
      text = await readFile(options.filename === '-' ? '/dev/stdin' : options.filename, 'utf8');
    } catch (err) {
      io.stderr(`error: cannot read ${escapeControl(source)}: ${escapeControl((err as Error).message)}\n`);
      state.exitCode = EXIT_USAGE;
      return;
    }
    const { convertPolicies, ConvertError } = await import('../guard/convert.ts');
    let conversion: ReturnType<typeof convertPolicies>;
    try {
      conversion = convertPolicies(text, { source, enforce: options.enforce });
    } catch (err) {
      if (!(err instanceof ConvertError)) throw err;
      io.stderr(`error: ${escapeControl(err.message)}\n`);
      state.exitCode = EXIT_USAGE;
      return;
    }
    if (options.output === 'json') {
      io.stdout(`${JSON.stringify({ apiVersion: 'v1', kind: 'List', items: conversion.policies }, null, 2)}\n`);
    } else {
      const { dump } = await import('js-yaml');
      io.stdout(conversion.policies.map((policy) => dump(policy, { lineWidth: -1, noRefs: true })).join('---\n'));
    }
    for (const note of conversion.notes) io.stderr(`note: ${escapeControl(note)}\n`);
    state.exitCode = EXIT_OK;
  });
}

const CONVERT_HELP = `
What each field of the tool becomes:
  Namespace       one GuardPolicy per namespace listed (none: default, as the tool did)
  labelSelector   spec.targets.podSelector (matchExpression and its operators in, notin: a
                  LabelSelector; matchExpressions, which the tool ignored, is applied)
  groupLabel      spec.targets.groupBy
  action          quarantine: actions Event and Quarantine (the failing pod leaves its owner,
                  which replaces it; the tool scaled the whole Deployment to zero)
  logFrequency    the health detector's window: three of the tool's check intervals (10 s when
                  unset, as the tool did), three failed checks in it open an incident
  destination     not converted: logs stay on the nodes, served only to callers allowed
                  get pods/log
Notes about each conversion go to stderr; the policies go to stdout. Converted policies are dry
runs (spec.dryRun: true) unless --enforce is given: watch their status, then let them act.

Examples:
  # Convert, look, apply
  crowsnest guard convert -f receiver.yaml > guardpolicies.yaml
  kubectl apply -f guardpolicies.yaml

  # Straight from the cluster that still runs the tool
  kubectl get receivers.sampleproject.io -A -o yaml | crowsnest guard convert -f - | kubectl apply -f -
`;
