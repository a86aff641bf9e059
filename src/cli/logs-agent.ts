/**
 * `crowsnest logs-agent`: guard's node log agent (a DaemonSet): tails the pod logs the operator
 * names on this node and sends it counts of lines matching each GuardPolicy's pattern. Loads only
 * the agent (no operator runtime, pino or prom-client).
 */
import type { Command } from 'commander';
import { addFlags } from './flags.ts';
import { kubeClientFor, requireGlobals, type CliIO, type RunState } from './command.ts';
import { logsAgentFlagList, resolveLogsAgentOptions } from '../guard/logs/flags.ts';

const HELP = `
It reads /var/log/pods/<namespace>_<pod>_<uid>/<container>/<run>.log (the CRI log format, partial
lines joined) of the pods the operator's answers name, from where it stopped: its cursors and the
batch in flight are kept in --state-dir, so a restart neither loses nor repeats a line, and a log
the kubelet rotated (or compressed) is read to its end before the next. A watch counts from the
moment the agent learns of it; no history is ever sent. While the operator does not accept a
batch the agent reads nothing further and sends the same batch again.

Patterns run on V8's linear-time regular expression engine: backreferences, lookarounds and inline
modifiers are refused (a leading (?i) is honoured), and at most 1024 characters.

Log API (on --log-api-bind-address, HTTPS): GET /v1/namespaces/<ns>/pods/<pod>/log
?container=&tailLines=&previous=true, the log of a pod on this node read from its files, for a
caller whose bearer token the API server authenticates (TokenReview) and allows get pods/log on
that pod (SubjectAccessReview); needs the ClusterRole system:auth-delegator.

Metrics (on --metrics-bind-address): crowsnest_logs_agent_lines_read_total,
crowsnest_logs_agent_batches_accepted_total, crowsnest_logs_agent_send_failures_total,
crowsnest_logs_agent_lost_files_total, crowsnest_logs_agent_batch_pending, ...
`;

export function defineLogsAgentCommand(command: Command, io: CliIO, state: RunState): void {
  command.addHelpText('after', HELP);
  const flagValues = addFlags(command, logsAgentFlagList);
  command.action(async () => {
    const globals = requireGlobals(state);
    const options = resolveLogsAgentOptions({ flags: flagValues(), env: io.env });
    const [{ agentLogger }, { startLogsAgent }] = await Promise.all([import('../observe/json-lines-logger.ts'), import('../guard/logs/run.ts')]);
    const logger = agentLogger((line) => io.stderr(line), globals.logLevel === 'debug' || globals.logLevel === 'trace' ? 'debug' : 'info');
    // Only the log API talks to the API server (TokenReview, SubjectAccessReview).
    const kube = options.logApi ? await kubeClientFor(globals, io.env) : undefined;
    const agent = await startLogsAgent(options, { logger, ...(kube ? { kube } : {}) });
    const signal = await new Promise<NodeJS.Signals>((resolve) => {
      process.once('SIGTERM', () => resolve('SIGTERM'));
      process.once('SIGINT', () => resolve('SIGINT'));
    });
    logger.info({ signal }, 'stopping');
    await agent.stop();
    await kube?.close();
  });
}
