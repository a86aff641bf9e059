/**
 * `crowsnest guard`: what people do with guard from a terminal. `release` and `delete` end a
 * quarantine by hand, as the policy's ttl would.
 *
 * Imported only when the command line names `guard` (see `main.ts`).
 */
import type { Command } from 'commander';
import { flag, FlagResolver } from '../flags.ts';
import { parseNamespace } from '../flag-values.ts';
import { escapeControl } from '../terminal-text.ts';
import { EXIT_FAILURE, EXIT_OK, requireGlobals, type CliIO, type RunState } from './command.ts';
import { addFlags } from './flags.ts';

export const guardQuarantineFlags = {
  namespace: flag({ name: 'namespace', short: 'n', valueName: '<namespace>', description: 'namespace of the pod', defaultText: 'the kubeconfig context\'s, else default', env: false, parse: parseNamespace }),
};

/** Adds `release` and `delete` to the `guard` command (named and described by `main.ts`). */
export function defineGuardCommand(guard: Command, io: CliIO, state: RunState): void {
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
