/**
 * The `crowsnest` command line: one binary, one subcommand per role (see ARCHITECTURE.md).
 *
 * This file only wires commander to the option resolvers (`options.ts`) and to the code that runs
 * each command. Anything heavy — the kubeconfig loader and HTTP client, pino, prom-client, the
 * operator — is imported inside the command that needs it, so `crowsnest --help` starts in well
 * under 300 ms.
 */
import { Command, CommanderError, Option } from 'commander';
import { version } from '../version.ts';
import {
  describeFlag,
  globalFlags,
  knownControllers,
  OptionError,
  operatorFlags,
  resolveGlobalOptions,
  resolveOperatorOptions,
  type FlagDefinition,
  type GlobalOptions,
} from './options.ts';
import { runVersionCommand, versionOutputs } from './version.ts';
import { addInventoryCommand } from './inventory.ts';
import { rewriteSeedFlags } from './inventory-options.ts';
import { EXIT_OK, EXIT_FAILURE, EXIT_USAGE, processIO, requireGlobals, type CliIO, type RunState } from './command.ts';
import { addPortsCommand } from './ports.ts';

export { EXIT_OK, EXIT_FAILURE, EXIT_USAGE, type CliIO } from './command.ts';

/**
 * Runs the CLI.
 *
 * @param argv the arguments after the program name (`process.argv.slice(2)`).
 * @returns the exit code: 0 success, 1 failure, 2 usage error (unknown command, bad flag or value).
 */
export async function main(argv: readonly string[], io: CliIO = processIO): Promise<number> {
  const state: RunState = { exitCode: EXIT_OK };
  const program = buildProgram(io, state);
  try {
    await program.parseAsync(argv.includes('inventory') ? rewriteSeedFlags(argv) : [...argv], { from: 'user' });
    return state.exitCode;
  } catch (err) {
    // Commander already printed its message (or the help / version it was asked for).
    if (err instanceof CommanderError) return err.exitCode === EXIT_OK ? EXIT_OK : EXIT_USAGE;
    if (err instanceof OptionError) {
      io.stderr(`error: ${err.message}\n`);
      return EXIT_USAGE;
    }
    // Stacks are for whoever debugs crowsnest, not for whoever runs it.
    const debugging = state.globals?.logLevel === 'debug' || state.globals?.logLevel === 'trace';
    const text = err instanceof Error ? (debugging && err.stack ? err.stack : err.message) : String(err);
    io.stderr(`error: ${text}\n`);
    return EXIT_FAILURE;
  }
}

function buildProgram(io: CliIO, state: RunState): Command {
  const program = new Command('crowsnest');
  // Settings below are inherited by the subcommands created after them.
  program
    .description(DESCRIPTION)
    .usage('<command> [options]')
    .configureOutput({ writeOut: io.stdout, writeErr: io.stderr })
    .configureHelp({ showGlobalOptions: true, sortSubcommands: true })
    .exitOverride()
    .showHelpAfterError('(run with --help for usage)')
    .version(version, '-V, --version', 'print the crowsnest version and exit');

  program
    .addOption(new Option(`--kubeconfig ${globalFlags.kubeconfig.valueName}`, withDefault(globalFlags.kubeconfig)))
    .addOption(new Option(`--context ${globalFlags.context.valueName}`, withDefault(globalFlags.context)))
    .addOption(new Option(`--log-level ${globalFlags.logLevel.valueName}`, describeFlag(globalFlags.logLevel)))
    .addOption(new Option(`--log-format ${globalFlags.logFormat.valueName}`, describeFlag(globalFlags.logFormat)));

  // Global options are checked before any command runs, so a bad --log-level fails every command alike.
  program.hook('preAction', () => {
    const raw = program.opts<Record<string, string | undefined>>();
    state.globals = resolveGlobalOptions(
      {
        flags: { kubeconfig: raw['kubeconfig'], context: raw['context'], 'log-level': raw['logLevel'], 'log-format': raw['logFormat'] },
        env: io.env,
      },
      io.stderrIsTTY,
    );
  });

  addOperatorCommand(program, io, state);
  addPortsCommand(program, io, state);
  addInventoryCommand(program, io, state);
  addVersionCommand(program, io, state);
  program.addHelpText('after', () => rootHelpFooter(program));
  return program;
}

// ---------------------------------------------------------------------------------------------
// Commands

function addOperatorCommand(program: Command, io: CliIO, state: RunState): void {
  const command = program
    .command('operator')
    .description('run the Crowsnest controllers, leader-elected, with /metrics and /healthz, /readyz endpoints')
    .addHelpText('after', `\nDurations are Go-style: 500ms, 15s, 1m30s, 1h.\n`);

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

    const [{ createLogger }, { createRegistry }, { runOperator }] = await Promise.all([
      import('../observe/logger.ts'),
      import('../observe/metrics.ts'),
      import('../operator/run.ts'),
    ]);
    const logger = createLogger({ level: globals.logLevel, format: globals.logFormat });
    state.exitCode = await runOperator(options, { logger, registry: createRegistry() });
  });
}

function addVersionCommand(program: Command, io: CliIO, state: RunState): void {
  const command = program
    .command('version')
    .description('print the crowsnest and Node.js versions, and the API server version when a cluster is configured')
    .addOption(new Option('-o, --output <format>', 'output format').choices(versionOutputs).default('text'));

  command.action(async () => {
    const globals = requireGlobals(state);
    state.exitCode = await runVersionCommand({
      output: command.getOptionValue('output'),
      globals,
      env: io.env,
      stdout: io.stdout,
    });
  });
}


// ---------------------------------------------------------------------------------------------
// Help text

function withDefault(definition: FlagDefinition): string {
  return `${definition.description} (default: ${definition.defaultText})`;
}

// One paragraph: commander wraps it to the terminal width.
const DESCRIPTION =
  'Crowsnest keeps a lookout over a Kubernetes cluster: scoped access to workload logs, an inventory ' +
  'of what runs where, the ports every node listens on, pod-to-pod network probes, and a guard ' +
  'that steps in when pods misbehave.';

/** Capabilities as users know them; `available` is derived, so this list cannot go stale. */
const CAPABILITIES: readonly { readonly name: string; readonly summary: string }[] = [
  { name: 'logaccess', summary: `let a workload's team read its pods' logs, and only those` },
  { name: 'inventory', summary: `snapshot the cluster's objects, redacted, to files or HTTP` },
  { name: 'ports', summary: "list each node's listening sockets, diffed with the last run" },
  { name: 'prober', summary: 'measure pod-to-pod round trips with an injected agent' },
  { name: 'guard', summary: 'spot misbehaving pods and respond step by step, dry-run first' },
];

const STATUS_WIDTH = 'coming'.length;

function rootHelpFooter(program: Command): string {
  const width = Math.max(...CAPABILITIES.map((capability) => capability.name.length));
  const capabilities = CAPABILITIES.map(({ name, summary }) => {
    // A capability is available once it ships as a command or as an operator controller.
    const available = knownControllers.includes(name) || program.commands.some((command) => command.name() === name);
    return `  ${name.padEnd(width)}  ${(available ? 'ready' : 'coming').padEnd(STATUS_WIDTH)}  ${summary}`;
  });
  return `
Capabilities:
${capabilities.join('\n')}

Examples:
  # Versions of crowsnest, Node.js and the cluster of the current context
  crowsnest version

  # Run the operator against a dev cluster, no leader election, text logs
  crowsnest operator --kubeconfig ~/.kube/dev --no-leader-elect --log-format text

  # Metrics on localhost only, probe endpoints off
  crowsnest operator --metrics-bind-address 127.0.0.1:8080 \\
    --health-probe-bind-address 0

Environment:
  Every operator flag can be set as CROWSNEST_<FLAG_NAME>, for example
  CROWSNEST_LEASE_DURATION=30s; a flag on the command line wins.
  KUBECONFIG works as in kubectl.

Exit status: 0 success, 1 failure, 2 usage error (unknown command, bad flag or value).
`;
}
