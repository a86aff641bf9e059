/**
 * `crowsnest operator`: the controllers, leader-elected, with the metrics and health servers.
 * The operator runtime, pino and prom-client load inside the action.
 */
import type { Command } from 'commander';
import { operatorCommandFlags, resolveOperatorOptions } from '../operator/flags.ts';
import { requireGlobals, type CliIO, type RunState } from './command.ts';
import { addFlags } from './flags.ts';

/** Adds the operator's flags and action to `command` (named and described by `main.ts`). */
export function defineOperatorCommand(command: Command, io: CliIO, state: RunState): void {
  command.addHelpText('after', `\nDurations are Go-style: 500ms, 15s, 1m30s, 1h.\n`);

  const flagValues = addFlags(command, operatorCommandFlags);

  command.action(async () => {
    const globals = requireGlobals(state);
    const options = resolveOperatorOptions({ flags: flagValues(), env: io.env }, globals);
    // Before the runtime loads: the operator's V8 memory settings work best set first.
    (await import('../operator/v8-flags.ts')).applyOperatorV8Flags();

    const [{ createLogger }, { createRegistry }, { runOperator }] = await Promise.all([
      import('../observe/logger.ts'),
      import('../observe/metrics.ts'),
      import('../operator/run.ts'),
    ]);
    const logger = createLogger({ level: globals.logLevel, format: globals.logFormat });
    state.exitCode = await runOperator(options, { logger, registry: createRegistry() });
  });
}
