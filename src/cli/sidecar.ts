/**
 * `crowsnest sidecar`: guard's health sidecar, configured by the environment guard's webhook
 * injects (src/guard/contract.ts). Loads only the sidecar (no operator runtime, pino or
 * prom-client): it runs in every guarded pod.
 */
import type { Command } from 'commander';
import { runInPod } from './agent-process.ts';
import type { CliIO, RunState } from './command.ts';

const ENVIRONMENT_HELP = `
Environment (set by guard's webhook when it injects the sidecar into a pod a GuardPolicy selects):
  CROWSNEST_GUARD_DECLARED_PORTS  JSON [{container, port, protocol, name?}]: the sibling containers'
                                  declared ports; the TCP ones are probed on the pod's IP
  CROWSNEST_GUARD_METRICS_PORT    port of /metrics, /readyz and /healthz (container port guard-metrics)
  CROWSNEST_POD_NAME, CROWSNEST_POD_NAMESPACE, CROWSNEST_POD_IP, CROWSNEST_NODE_NAME
                                  this pod (downward API)
  CROWSNEST_GUARD_POLICY          the GuardPolicy that selected the pod
  CROWSNEST_GUARD_URL             https:// URL of the operator's guard endpoint (POST /v1/guard/health)
  CROWSNEST_GUARD_CA              PEM bundle trusted for that endpoint
  CROWSNEST_GUARD_TOKEN_FILE      projected ServiceAccount token (audience crowsnest.dev/guard), read per request
Tuning (not set by the webhook; defaults in brackets):
  CROWSNEST_GUARD_PROBE_PERIOD    mean interval between probes of one port, jittered ±15 % [10s]
  CROWSNEST_GUARD_PROBE_TIMEOUT   a probe taking longer fails with reason timeout [2s, at most half the period]
  CROWSNEST_GUARD_REPORT_PERIOD   interval between reports until the operator sets its own [15s]
  CROWSNEST_GUARD_STARTUP_GRACE   a port that has not answered yet is starting, not failing, this
                                  long after the sidecar starts: its failures are not reported [2m]

A port that answers GET / with an HTTP status line is probed by HTTP (healthy below 500), any
other by TCP connect. The sockets listening in the pod (/proc/net/{tcp,tcp6,udp,udp6}) travel
with every report.

Metrics: crowsnest_guard_sidecar_probes_total{container,port,method},
crowsnest_guard_sidecar_probe_failures_total{...,reason}, crowsnest_guard_sidecar_port_up,
crowsnest_guard_sidecar_listening_sockets{protocol,address,port},
crowsnest_guard_sidecar_reports_total{result}.
`;

export function defineSidecarCommand(command: Command, io: CliIO, state: RunState): void {
  command.addHelpText('after', ENVIRONMENT_HELP);
  command.action(async () => {
    const { SidecarConfigError, sidecarConfigFromEnv } = await import('../guard/sidecar/config.ts');
    const { startSidecar } = await import('../guard/sidecar/run.ts');
    await runInPod(io, state, { configFromEnv: sidecarConfigFromEnv, ConfigError: SidecarConfigError, start: (config, logger) => startSidecar(config, { logger }) });
  });
}
