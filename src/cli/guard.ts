/**
 * `crowsnest guard`: what people do with guard from a terminal. `convert` turns the policy
 * framework's Receivers into GuardPolicies; `release` and `delete` end a quarantine by hand, as the
 * policy's ttl would.
 *
 * Imported only when the command line names `guard` (see `main.ts`).
 */
import { readFile } from 'node:fs/promises';
import type { Command } from 'commander';
import { flag, FlagResolver } from '../flags.ts';
import { parseNamespace } from '../flag-values.ts';
import { guardConvertFlagList, resolveGuardConvertOptions } from '../guard/convert-flags.ts';
import { escapeControl } from '../terminal-text.ts';
import { EXIT_FAILURE, EXIT_OK, EXIT_USAGE, requireGlobals, type CliIO, type RunState } from './command.ts';
import { addFlags } from './flags.ts';

export const guardQuarantineFlags = {
  namespace: flag({ name: 'namespace', short: 'n', valueName: '<namespace>', description: 'namespace of the pod', defaultText: 'the kubeconfig context\'s, else default', env: false, parse: parseNamespace }),
};

/** Adds `convert`, `release` and `delete` to the `guard` command (named and described by `main.ts`). */
export function defineGuardCommand(guard: Command, io: CliIO, state: RunState): void {
  addConvertCommand(guard, io, state);
  addQuarantineCommands(guard, io, state);
}

function addQuarantineCommands(guard: Command, io: CliIO, state: RunState): void {
  for (const [how, description] of [
    ['release', 'end the quarantine of a pod: give it back the labels guard removed (its owner adopts it again) and delete its isolating NetworkPolicy'],
    ['delete', 'end the quarantine of a pod by deleting it, and its isolating NetworkPolicy'],
  ] as const) {
    const command = guard.command(how).description(description).argument('<pod>', 'the quarantined pod');
    const flagValues = addFlags(command, Object.values(guardQuarantineFlags));
    command.action(async (pod: string) => {
      const globals = requireGlobals(state);
      const { loadKubeConfig } = await import('../kube/client/config.ts');
      const { KubeClient } = await import('../kube/client/client.ts');
      const { endQuarantine, QuarantineError } = await import('../guard/release.ts');
      const kc = loadKubeConfig({ kubeconfig: globals.kubeconfig, context: globals.context }, { env: io.env });
      const namespace = new FlagResolver({ flags: flagValues(), env: io.env }).get(guardQuarantineFlags.namespace) ?? kc.getCurrentNamespace() ?? 'default';
      const client = new KubeClient(kc);
      try {
        io.stdout(`${escapeControl(await endQuarantine(client, namespace, pod, how))}\n`);
        state.exitCode = EXIT_OK;
      } catch (err) {
        if (!(err instanceof QuarantineError)) throw err;
        io.stderr(`error: ${escapeControl(err.message)}\n`);
        state.exitCode = EXIT_FAILURE;
      } finally {
        await client.close();
      }
    });
  }
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
