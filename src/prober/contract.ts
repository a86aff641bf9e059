/**
 * What the operator's webhook writes into a pod and the agent reads back: container, port and
 * annotation names (the seed's where users' dashboards and PodMonitors depend on them), the
 * environment, the token volume, and the peer endpoint's wire format.
 *
 * Imports nothing: the agent loads this module, and every import costs it memory.
 */

// ---------------------------------------------------------------------------------------------
// Names the seed (k8s-network-prober-operator) used; kept so its users' queries keep working.

/** The injected container (a native sidecar: an init container with restartPolicy Always). */
export const AGENT_CONTAINER = 'net-prober';
/** Marks a pod the webhook injected, as the seed did. */
export const SEED_INJECTED_ANNOTATION = 'netprober-container-deployed';
export const SEED_INJECTED_VALUE = 'true';
/** Container port names: the ping port, and the metrics port PodMonitors select. */
export const PING_PORT_NAME = 'np-ping';
export const METRICS_PORT_NAME = 'np-prometheus';

// ---------------------------------------------------------------------------------------------
// Our own annotations on injected pods.

/** The NetworkProber (of the pod's namespace) whose agent the pod runs. */
export const PROBER_ANNOTATION = 'prober.crowsnest.dev/network-prober';
/**
 * Set by the user on a pod (template) to `debug`: its agent logs every probe with its RTT, for
 * looking into one pod's measurements without a Prometheus at hand.
 */
export const AGENT_LOG_LEVEL_ANNOTATION = 'prober.crowsnest.dev/agent-log-level';

// ---------------------------------------------------------------------------------------------
// The agent's environment.

export const ENV = {
  /** Seed: port of GET /ping. */
  httpPort: 'HTTP_PORT',
  /** Seed: port of /metrics and /readyz. */
  prometheusPort: 'HTTP_PROMETHEUS_PORT',
  podName: 'CROWSNEST_POD_NAME',
  podNamespace: 'CROWSNEST_POD_NAMESPACE',
  podIp: 'CROWSNEST_POD_IP',
  nodeName: 'CROWSNEST_NODE_NAME',
  proberName: 'CROWSNEST_PROBER_NAME',
  /** Base URL of the operator's peer endpoint, `https://host:port`. */
  peersUrl: 'CROWSNEST_PROBER_PEERS_URL',
  /** PEM bundle the agent trusts for the peer endpoint (the operator's CA). */
  caBundle: 'CROWSNEST_PROBER_CA',
  /** File holding the projected ServiceAccount token. */
  tokenFile: 'CROWSNEST_PROBER_TOKEN_FILE',
} as const;

// ---------------------------------------------------------------------------------------------
// The projected ServiceAccount token the agent shows the peer endpoint.

/** Audience of the token: it is good for our peer endpoint and nothing else (not the API server). */
export const TOKEN_AUDIENCE = 'crowsnest.dev/prober';
/** The kubelet refreshes it at 80 % of this; 600 s is the shortest the API server issues. */
export const TOKEN_EXPIRATION_SECONDS = 600;
export const TOKEN_VOLUME = 'crowsnest-prober-token';
export const TOKEN_MOUNT_PATH = '/var/run/secrets/crowsnest.dev/prober';
export const TOKEN_FILE = `${TOKEN_MOUNT_PATH}/token`;

// ---------------------------------------------------------------------------------------------
// The peer endpoint (operator, HTTPS): one request per poll.
//
//   POST /v1/sync   Authorization: Bearer <projected token>   Content-Type: application/json
//   body: SyncRequest → 200 SyncResponse | 401 (token) | 403 (pod not injected) | 429/503 (retry)

export const SYNC_PATH = '/v1/sync';

/** The last outcome of probing one peer, as an agent reports it. */
export interface PeerResult {
  /** The peer pod's uid. */
  readonly uid: string;
  readonly reachable: boolean;
  /** Failure reason of the last probe when not reachable (`timeout`, `refused`, ...). */
  readonly reason?: string;
}

export interface SyncRequest {
  /** `version` of the last answer the agent holds; "" at start. Unchanged peers are not sent again. */
  readonly version: string;
  /** Per-peer outcome since the last sync (the operator's status counts reachable pairs from these). */
  readonly results: readonly PeerResult[];
}

/** A peer to probe. */
export interface Peer {
  readonly name: string;
  readonly uid: string;
  readonly ip: string;
  readonly node: string;
  /** Its agent's ping port. */
  readonly port: number;
}

export interface ProbeSettings {
  /** Time between two probes of the same peer, in milliseconds (jittered by the agent). */
  readonly pollingPeriodMs: number;
  /** A probe that takes longer has failed with reason `timeout`, in milliseconds. */
  readonly timeoutMs: number;
}

export type SyncResponse =
  | {
    readonly version: string;
    readonly changed: true;
    readonly peers: readonly Peer[];
    readonly settings: ProbeSettings;
    /** Whether this replica keeps the report (the leader does); if not, the agent reconnects to reach another. */
    readonly reportAccepted: boolean;
    /** Milliseconds until the next sync. */
    readonly syncAfterMs: number;
  }
  | { readonly version: string; readonly changed: false; readonly reportAccepted: boolean; readonly syncAfterMs: number };

/** Failure reasons of a probe: `crowsnest_prober_errors_total{reason}` and the reports' `reason`. */
export const FAILURE_REASONS = ['timeout', 'refused', 'reset', 'unreachable', 'http_status', 'protocol', 'other'] as const;
export type FailureReason = (typeof FAILURE_REASONS)[number];

/** How a peer is probed: `method` label of the RTT histogram. */
export const PROBE_METHODS = ['http', 'tcp'] as const;
export type ProbeMethod = (typeof PROBE_METHODS)[number];
