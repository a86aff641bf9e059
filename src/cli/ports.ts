/**
 * `crowsnest ports`: the sockets hosts listen on. Each subcommand registers itself on the
 * `ports` command through its own `add…Command` function below; `scan` reads this host's /proc.
 *
 * Imported only when the command line names `ports` (see `main.ts`); the scanner is imported when
 * a subcommand runs. `ports/format.ts` imports nothing but types and `terminal-text.ts`.
 */
import type { Command } from 'commander';
import { EXIT_OK, requireGlobals, type CliIO, type RunState } from './command.ts';
import { renderJson, renderTable, scanWarnings } from '../ports/format.ts';
import { portsScanFlagList, resolvePortsScanOptions } from '../ports/flags.ts';
import { addFlags } from './flags.ts';
import { addPortsCollectCommand } from './ports-collect.ts';

/** Adds `scan` and `collect` to the `ports` command (named and described by `main.ts`). */
export function definePortsCommand(ports: Command, io: CliIO, state: RunState): void {
  addScanCommand(ports, io, state);
  addPortsCollectCommand(ports, io, state);
}

function addScanCommand(ports: Command, io: CliIO, state: RunState): void {
  const command = ports
    .command('scan')
    .description(
      "list this host's listening sockets — what `ss -ltnup` lists — read from /proc: TCP in LISTEN and " +
        'bound unconnected UDP, IPv4 and IPv6, each with its address, port and the process holding it',
    )
    .addHelpText('after', SCAN_HELP);
  const flagValues = addFlags(command, portsScanFlagList);

  command.action(async () => {
    requireGlobals(state);
    const { procRoot, netPid, output } = resolvePortsScanOptions({ flags: flagValues(), env: io.env });

    const { scanHost } = await import('../ports/scan.ts');
    const scan = await scanHost({ procRoot, netPid });
    io.stdout(output === 'json' ? renderJson(scan) : renderTable(scan));
    // Warnings go to stderr so `-o json` output stays parseable; what they say is also in the JSON.
    for (const warning of scanWarnings(scan)) io.stderr(`warning: ${warning}\n`); // escaped by scanWarnings
    state.exitCode = EXIT_OK;
  });
}

const SCAN_HELP = `
Sockets are those \`ss -ltnup\` lists, one line per socket (two SO_REUSEPORT listeners on one
port are two lines). A \`::\` listener is reported as ipv6 even when it also accepts IPv4:
/proc does not tell whether IPV6_V6ONLY is set. Processes are found through /proc/<pid>/fd;
other users' processes are visible to root only, and sockets held by processes of another PID
namespace have none: a warning on stderr says how many sockets lack a process, and why.

Examples:
  # Listening sockets of this host (as root, with every process)
  sudo crowsnest ports scan

  # The JSON document (apiVersion crowsnest.dev/v1alpha1, kind HostPortScan), e.g. for jq
  crowsnest ports scan -o json | jq '.sockets[] | select(.port == 22)'

  # In a pod with hostPID: true: the node's sockets, not the pod's
  crowsnest ports scan --net-pid 1

  # The node's /proc mounted at /host/proc
  crowsnest ports scan --proc /host/proc --net-pid 1

Exit status: 0 success (even when some processes are unknown), 1 failure (no readable socket
tables), 2 usage error.
`;
