/**
 * The `crowsnest` command line: one binary, one subcommand per role (see ARCHITECTURE.md).
 *
 * This file only wires commander to the global flags (`flags.ts`) and to the command modules.
 * A command's module is imported only when the command line names it (see {@link COMMANDS}), and
 * anything heavy — the kubeconfig loader and HTTP client, pino, prom-client, the operator — only
 * inside the action that needs it: `crowsnest --help` loads no command module at all.
 */
import { Command, CommanderError, Help } from 'commander';
import { version } from '../version.ts';
import { OptionError } from '../flags.ts';
import { controllerCatalog } from '../operator/catalog.ts';
import { addFlags, globalFlags, resolveGlobalOptions } from './flags.ts';
import { EXIT_OK, EXIT_FAILURE, EXIT_USAGE, processIO, type CliIO, type RunState } from './command.ts';
import { escapeControl, escapeControlKeepingLines } from '../terminal-text.ts';

export { EXIT_OK, EXIT_FAILURE, EXIT_USAGE, type CliIO } from './command.ts';

/**
 * Runs the CLI.
 *
 * @param argv the arguments after the program name (`process.argv.slice(2)`).
 * @returns the exit code: 0 success, 1 failure, 2 usage error (unknown command, bad flag or value).
 */
export async function main(argv: readonly string[], io: CliIO = processIO): Promise<number> {
  const state: RunState = { exitCode: EXIT_OK };
  try {
    const program = await buildProgram(argv, io, state);
    const args = argv.includes('inventory') ? (await import('../inventory/flags.ts')).rewriteSeedFlags(argv) : [...argv];
    await program.parseAsync(args, { from: 'user' });
    return state.exitCode;
  } catch (err) {
    // Commander already printed its message (or the help / version it was asked for).
    if (err instanceof CommanderError) return err.exitCode === EXIT_OK ? EXIT_OK : EXIT_USAGE;
    // Messages quote what others wrote (a config file, an API server, an endpoint): one line each,
    // never raw control characters on the terminal.
    if (err instanceof OptionError) {
      io.stderr(`error: ${escapeControl(err.message)}\n`);
      return EXIT_USAGE;
    }
    // Stacks are for whoever debugs crowsnest, not for whoever runs it.
    const debugging = state.globals?.logLevel === 'debug' || state.globals?.logLevel === 'trace';
    const text = err instanceof Error ? (debugging && err.stack ? escapeControlKeepingLines(err.stack) : escapeControl(err.message)) : escapeControl(String(err));
    io.stderr(`error: ${text}\n`);
    return EXIT_FAILURE;
  }
}

/**
 * The commands. Every one is on the root command, named and described, so help and "did you
 * mean" suggestions know them all; the module that adds its flags, subcommands and action is
 * imported only when the command line names the command (e.g. `crowsnest ports scan`, `crowsnest
 * help ports`). A value that happens to equal a command's name only costs that module's import.
 */
interface CommandEntry {
  readonly name: string;
  /** What the root help says of it. */
  readonly description: string;
  readonly define: () => Promise<(command: Command, io: CliIO, state: RunState) => void>;
}

const COMMANDS: readonly CommandEntry[] = [
  { name: 'agent', description: "the network prober's sidecar: probes its peers, serves /ping and /metrics (injected by a NetworkProber)", define: async () => (await import('./agent.ts')).defineAgentCommand },
  {
    name: 'guard',
    description: "GuardPolicies from a terminal: convert the policy framework's Receivers, release or delete a quarantined pod",
    define: async () => (await import('./guard.ts')).defineGuardCommand,
  },
  {
    name: 'inventory',
    description: "snapshot the cluster's objects, redacted, into a report directory or to an HTTP endpoint",
    define: async () => (await import('./inventory.ts')).defineInventoryCommand,
  },
  {
    name: 'logs-agent',
    description: "guard's node log agent (a DaemonSet): counts lines matching GuardPolicies' patterns in this node's pod logs, for the operator",
    define: async () => (await import('./logs-agent.ts')).defineLogsAgentCommand,
  },
  {
    name: 'operator',
    description: 'run the Crowsnest controllers, leader-elected, with /metrics and /healthz, /readyz endpoints',
    define: async () => (await import('./operator.ts')).defineOperatorCommand,
  },
  {
    name: 'ports',
    description: 'the sockets hosts listen on: TCP listeners and bound UDP sockets, with their processes',
    define: async () => (await import('./ports.ts')).definePortsCommand,
  },
  {
    name: 'sidecar',
    description: "guard's health sidecar: probes its pod's declared ports, reads its listening sockets, reports them (injected by a GuardPolicy)",
    define: async () => (await import('./sidecar.ts')).defineSidecarCommand,
  },
  {
    name: 'version',
    description: 'print the crowsnest and Node.js versions, and the API server version when a cluster is configured',
    define: async () => (await import('./version.ts')).defineVersionCommand,
  },
];

async function buildProgram(argv: readonly string[], io: CliIO, state: RunState): Promise<Command> {
  const program = new Command('crowsnest');
  // Settings below are inherited by the subcommands created after them.
  program
    .description(DESCRIPTION)
    .usage('<command> [options]')
    // Commander's errors echo the arguments as given: escaped like every other message.
    .configureOutput({ writeOut: io.stdout, writeErr: io.stderr, outputError: (text, write) => write(escapeControlKeepingLines(text)) })
    .configureHelp({ showGlobalOptions: true, sortSubcommands: true })
    .exitOverride()
    .showHelpAfterError('(run with --help for usage)')
    .version(version, '-V, --version', 'print the crowsnest version and exit');

  const globalValues = addFlags(program, Object.values(globalFlags));

  // Global options are checked before any command runs, so a bad --log-level fails every command alike.
  program.hook('preAction', () => {
    state.globals = resolveGlobalOptions({ flags: globalValues(), env: io.env }, io.stderrIsTTY);
  });

  const named = COMMANDS.filter((entry) => argv.includes(entry.name));
  const definitions = await Promise.all(named.map((entry) => entry.define()));
  for (const entry of COMMANDS) {
    const command = program.command(entry.name).description(entry.description);
    const index = named.indexOf(entry);
    if (index !== -1) definitions[index]!(command, io, state);
  }
  // The root help lists commands without commander's "[options]": a command not named on the
  // command line has no flags defined, so the suffix would depend on how help was asked for.
  program.configureHelp({ ...program.configureHelp(), subcommandTerm: (command) => new Help().subcommandTerm(command).replace(' [options]', '') });
  program.addHelpText('after', () => rootHelpFooter(program));
  return program;
}

// ---------------------------------------------------------------------------------------------
// Help text

// One paragraph: commander wraps it to the terminal width.
const DESCRIPTION =
  'Crowsnest keeps a lookout over a Kubernetes cluster: scoped access to workload logs, an inventory ' +
  'of what runs where, the ports every node listens on, pod-to-pod network probes, and a guard ' +
  'that steps in when pods misbehave.';

/**
 * Capabilities as users know them; `available` is derived, so this list cannot go stale: an
 * operator capability is ready once its controller is in the catalog (a command of the same name,
 * such as `guard convert`, is not enough), a command capability once its command ships.
 */
const CAPABILITIES: readonly { readonly name: string; readonly runsIn: 'operator' | 'command'; readonly summary: string }[] = [
  { name: 'logaccess', runsIn: 'operator', summary: `let a workload's team read its pods' logs, and only those` },
  { name: 'inventory', runsIn: 'command', summary: `snapshot the cluster's objects, redacted, to files or HTTP` },
  { name: 'ports', runsIn: 'command', summary: "list each node's listening sockets, diffed with the last run" },
  { name: 'prober', runsIn: 'operator', summary: 'measure pod-to-pod round trips with an injected agent' },
  { name: 'guard', runsIn: 'operator', summary: 'spot misbehaving pods and respond step by step, dry-run first' },
];

const STATUS_WIDTH = 'coming'.length;

function rootHelpFooter(program: Command): string {
  const width = Math.max(...CAPABILITIES.map((capability) => capability.name.length));
  const capabilities = CAPABILITIES.map(({ name, runsIn, summary }) => {
    const available = runsIn === 'operator'
      ? controllerCatalog.some((controller) => controller.name === name)
      : program.commands.some((command) => command.name() === name);
    return `  ${name.padEnd(width)}  ${(available ? 'ready' : 'coming').padEnd(STATUS_WIDTH)}  ${summary}`;
  });
  return `
Capabilities:
${capabilities.join('\n')}

Examples:
  # Versions of crowsnest, Node.js and the cluster of the current context
  crowsnest version

  # Run the operator against a dev cluster, text logs (outside a pod it runs alone:
  # no leader election unless --leader-elect or --leader-election-namespace asks for it)
  crowsnest operator --kubeconfig ~/.kube/dev --log-format text

  # Two operators by hand, one leading: a Lease in a namespace that exists
  crowsnest operator --leader-election-namespace crowsnest-system

  # Metrics on localhost only, probe endpoints off
  crowsnest operator --metrics-bind-address 127.0.0.1:8080 \\
    --health-probe-bind-address 0

Environment:
  Flags of operator, inventory collect and ports collect can be set as
  CROWSNEST_<FLAG_NAME>, for example CROWSNEST_LEASE_DURATION=30s (each command's help
  names them); a flag on the command line wins. KUBECONFIG works as in kubectl.

Exit status: 0 success, 1 failure, 2 usage error (unknown command, bad flag or value),
141 when the reader of the output stops early (\`crowsnest ... | head\`), as SIGPIPE ends Unix tools.
`;
}
