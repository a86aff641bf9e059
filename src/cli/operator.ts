/**
 * `crowsnest operator`: the controllers, leader-elected, with the metrics and health servers.
 * The operator runtime, pino and prom-client load inside the action.
 */
import { Option, type Command } from 'commander';
import { requireGlobals, type CliIO, type RunState } from './command.ts';
import { describeFlag, operatorFlags, resolveOperatorOptions } from './options.ts';

/** Adds the operator's flags and action to `command` (named and described by `main.ts`). */
export function defineOperatorCommand(command: Command, io: CliIO, state: RunState): void {
  command.addHelpText('after', `\nDurations are Go-style: 500ms, 15s, 1m30s, 1h.\n`);

  const attributeNames = new Map<string, string>();
  for (const definition of operatorFlags) {
    const option = new Option(`--${definition.name} ${definition.valueName}`, describeFlag(definition));
    attributeNames.set(definition.name, option.attributeName());
    command.addOption(option);
    if (definition.negatable) {
      command.addOption(new Option(`--no-${definition.name}`, `same as --${definition.name}=false`));
    }
  }

  command.action(async () => {
    const globals = requireGlobals(state);
    const flags: Record<string, string | boolean | undefined> = {};
    for (const [name, attribute] of attributeNames) flags[name] = command.getOptionValue(attribute);
    const options = resolveOperatorOptions({ flags, env: io.env }, globals);
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
