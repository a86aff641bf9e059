/**
 * `crowsnest agent`: the network prober's sidecar, configured by the environment the webhook
 * injects (src/prober/contract.ts). Loads only the agent (no operator runtime, pino or
 * prom-client): its memory is the benchmark's subject.
 */
import type { Command } from 'commander';
import { runInPod } from './agent-process.ts';
import type { CliIO, RunState } from './command.ts';

const ENVIRONMENT_HELP = `
Environment (set by the NetworkProber webhook when it injects the agent):
  HTTP_PORT                     port of GET /ping, probed by the other agents
  HTTP_PROMETHEUS_PORT          port of /metrics and /readyz (container port np-prometheus)
  CROWSNEST_POD_NAME, CROWSNEST_POD_NAMESPACE, CROWSNEST_NODE_NAME
                                this pod (downward API)
  CROWSNEST_PROBER_NAME         the NetworkProber that injected it
  CROWSNEST_PROBER_PEERS_URL    https:// URL of the operator's peer endpoint
  CROWSNEST_PROBER_CA           PEM bundle trusted for that endpoint
  CROWSNEST_PROBER_TOKEN_FILE   projected ServiceAccount token (audience crowsnest.dev/prober)

Metrics: crowsnest_prober_rtt_seconds{source_pod,dest_pod,source_node,dest_node,method},
crowsnest_prober_errors_total{...,reason}, netprober_interpod_latency_s{dest_pod_name,dest_ip}.
`;

export function defineAgentCommand(command: Command, io: CliIO, state: RunState): void {
  command.addHelpText('after', ENVIRONMENT_HELP);
  command.action(async () => {
    const { AgentConfigError, agentConfigFromEnv, startAgent } = await import('../prober/agent/run.ts');
    await runInPod(io, state, { configFromEnv: agentConfigFromEnv, ConfigError: AgentConfigError, start: (config, logger) => startAgent(config, { logger }) });
  });
}
