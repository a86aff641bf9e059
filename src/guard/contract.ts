/**
 * What guard's parts agree on: the names the webhook writes into a pod and the sidecar reads back,
 * the labels and annotations of quarantine, and the wire format of the two HTTPS endpoints the
 * operator serves to guard's in-pod parts (the health sidecar and the node log agent).
 *
 * Imports nothing: the sidecar and the log agent load this module, and every import costs them
 * memory.
 *
 * Both endpoints authenticate the caller with its projected ServiceAccount token (audience
 * {@link TOKEN_AUDIENCE}), checked by a TokenReview ({@link ../kube/auth/token-review.ts}); no
 * RBAC grant in user namespaces is involved. A sidecar may only report about its own pod; a log
 * agent (the DaemonSet's ServiceAccount) only about pods on its own node.
 */

// ---------------------------------------------------------------------------------------------
// Names kept from the policy framework (rohitrajhans/kubernetes-cluster-monitor).

/** A namespace opts in to sidecar injection with this label (value {@link SIDECAR_INJECTION_VALUE}). */
export const SIDECAR_INJECTION_LABEL = 'sidecar-injection';
export const SIDECAR_INJECTION_VALUE = 'enabled';

// ---------------------------------------------------------------------------------------------
// The injected health sidecar (a native sidecar: an init container with restartPolicy Always).

export const SIDECAR_CONTAINER = 'crowsnest-guard';
/** The GuardPolicy (of the pod's namespace) whose sidecar the pod runs. */
export const GUARD_POLICY_ANNOTATION = 'guard.crowsnest.dev/policy';
/** Port of the sidecar's /metrics and /readyz; chosen to be unlikely in an application container. */
export const DEFAULT_SIDECAR_METRICS_PORT = 19091;
export const SIDECAR_METRICS_PORT_NAME = 'guard-metrics';

export const SIDECAR_ENV = {
  podName: 'CROWSNEST_POD_NAME',
  podNamespace: 'CROWSNEST_POD_NAMESPACE',
  podIp: 'CROWSNEST_POD_IP',
  nodeName: 'CROWSNEST_NODE_NAME',
  policyName: 'CROWSNEST_GUARD_POLICY',
  /** Base URL of the operator's guard endpoint, `https://host:port`. */
  signalsUrl: 'CROWSNEST_GUARD_URL',
  /** PEM bundle the sidecar trusts for the guard endpoint (the operator's CA). */
  caBundle: 'CROWSNEST_GUARD_CA',
  tokenFile: 'CROWSNEST_GUARD_TOKEN_FILE',
  /** JSON {@link DeclaredPort}[]: the sibling containers' declared ports the webhook saw. */
  declaredPorts: 'CROWSNEST_GUARD_DECLARED_PORTS',
  /** Port of the sidecar's /metrics and /readyz. */
  metricsPort: 'CROWSNEST_GUARD_METRICS_PORT',
} as const;

/** A port a container of the pod declares in its spec. */
export interface DeclaredPort {
  readonly container: string;
  readonly port: number;
  readonly protocol: 'TCP' | 'UDP' | 'SCTP';
  readonly name?: string;
}

// ---------------------------------------------------------------------------------------------
// Projected ServiceAccount tokens of the sidecar and the log agent.

/** Good for guard's endpoint and nothing else (not the API server). */
export const TOKEN_AUDIENCE = 'crowsnest.dev/guard';
export const TOKEN_EXPIRATION_SECONDS = 600;
export const TOKEN_VOLUME = 'crowsnest-guard-token';
export const TOKEN_MOUNT_PATH = '/var/run/secrets/crowsnest.dev/guard';
export const TOKEN_FILE = `${TOKEN_MOUNT_PATH}/token`;

// ---------------------------------------------------------------------------------------------
// Quarantine: what guard writes on a pod it takes out of its owner.

/**
 * Set on a quarantined pod (value: the incident id). The owner's selector labels are removed at
 * the same time, so its controller makes a replacement and Services drop the pod; the isolating
 * NetworkPolicy selects this label.
 */
export const QUARANTINE_LABEL = 'guard.crowsnest.dev/quarantined';
/** JSON {@link QuarantineRecord} on a quarantined pod: why, when, and the labels it had. */
export const QUARANTINE_ANNOTATION = 'guard.crowsnest.dev/quarantine';

export interface QuarantineRecord {
  readonly incident: string;
  readonly policy: string;
  readonly detector: string;
  /** RFC 3339. */
  readonly at: string;
  /** RFC 3339; the pod is released (or deleted, per policy) then. */
  readonly until?: string;
  /** The labels removed, so `crowsnest guard release` can put them back. */
  readonly removedLabels: Readonly<Record<string, string>>;
}

// ---------------------------------------------------------------------------------------------
// The guard endpoint (operator, HTTPS, every replica; a standby answers 503 so callers retry and
// reach the leader, which keeps detection state).
//
//   POST /v1/guard/health   sidecar → operator     body HealthReport   → 200 HealthAnswer
//   POST /v1/guard/logs     log agent → operator   body LogBatch       → 200 LogAnswer
//   Authorization: Bearer <projected token>; 400 body, 401 token, 403 caller may not report
//   about that pod, 413 too large, 429/503 retry after `Retry-After`.

export const HEALTH_PATH = '/v1/guard/health';
export const LOGS_PATH = '/v1/guard/logs';

/** Probe outcomes of one declared port since the previous report. */
export interface PortHealth {
  readonly container: string;
  readonly port: number;
  readonly method: 'http' | 'tcp';
  readonly probes: number;
  readonly failures: number;
  /** Reason of the last failure (`timeout`, `refused`, `http_status`, ...). */
  readonly lastFailure?: string;
}

/** A socket listening in the pod's network namespace, as read from /proc/net/{tcp,tcp6,udp,udp6}. */
export interface ListeningSocket {
  readonly protocol: 'TCP' | 'UDP';
  readonly address: string;
  readonly port: number;
}

export interface HealthReport {
  /** Increases with each report of this sidecar's life; the operator ignores a sequence it has seen. */
  readonly sequence: number;
  readonly ports: readonly PortHealth[];
  /**
   * Every socket listening now (not only undeclared ones): the operator decides what is undeclared
   * from the pod spec in its cache, so a tampered sidecar environment cannot hide a port.
   */
  readonly listening: readonly ListeningSocket[];
}

export interface HealthAnswer {
  /** Milliseconds until the next report. */
  readonly reportAfterMs: number;
}

/** Lines of one container of one pod, read since the previous batch, counted against one policy's pattern. */
export interface LogCount {
  readonly namespace: string;
  readonly pod: string;
  readonly podUid: string;
  readonly container: string;
  readonly policy: string;
  /** Whole lines read (a CRI partial line counts once, when its last part arrives). */
  readonly lines: number;
  /** Lines matching the policy's pattern. */
  readonly matched: number;
  /** A few matching lines (each cut to 512 bytes), kept as evidence of an incident. */
  readonly samples: readonly string[];
}

export interface LogBatch {
  /** The agent's node (checked against the node its token was issued on). */
  readonly node: string;
  /**
   * Increases by one per batch, persisted with the agent's cursors: a batch the agent resends
   * after a restart (it could not know it was accepted) carries the same id and is counted once.
   */
  readonly batchId: number;
  readonly counts: readonly LogCount[];
}

/** One container to tail, and the pattern to count in it. */
export interface LogWatch {
  readonly namespace: string;
  readonly pod: string;
  readonly podUid: string;
  /** Empty: every container of the pod. */
  readonly containers: readonly string[];
  readonly policy: string;
  /** An RE2-compatible regular expression (the JavaScript subset the API validates). */
  readonly pattern: string;
}

export interface LogAnswer {
  /** The batch was kept (or had been kept already); the agent may advance its cursors. */
  readonly accepted: boolean;
  /** What to tail on this node from now on. */
  readonly watches: readonly LogWatch[];
  /** Milliseconds until the next batch. */
  readonly sendAfterMs: number;
}
