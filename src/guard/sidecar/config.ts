/**
 * The health sidecar's configuration: the environment guard's webhook injects (names in
 * ../contract.ts), checked once at start so a bad value stops the sidecar with a message naming
 * the variable rather than a sidecar that probes nothing.
 *
 * Four settings are the sidecar's own, with defaults, and not part of the contract: the probe
 * period and timeout (the webhook sets them when the operator is told to), the report period
 * before the operator first answers with its own, and the startup grace.
 */
import { parseDuration } from '../../flag-values.ts';
import { type DeclaredPort, SIDECAR_ENV } from '../contract.ts';

export interface SidecarConfig {
  readonly podName: string;
  readonly podNamespace: string;
  /** The address siblings' ports are probed on; the pod's IP, as Services and the kubelet reach them. Default 127.0.0.1. */
  readonly podIp: string;
  readonly nodeName: string;
  readonly policyName: string;
  /** `https://host:port` of the operator's guard endpoint. */
  readonly signalsUrl: string;
  readonly caBundle: string;
  readonly tokenFile: string;
  /** The siblings' declared ports; only TCP ones are probed. */
  readonly declaredPorts: readonly DeclaredPort[];
  readonly metricsPort: number;
  /** Mean interval between two probes of one port, in milliseconds. */
  readonly probePeriodMs: number;
  /** A probe that takes longer has failed (`timeout`), in milliseconds. Default 2 s, at most half the period. */
  readonly probeTimeoutMs: number;
  /** Interval between reports until the operator says otherwise, in milliseconds. */
  readonly reportPeriodMs: number;
  /**
   * How long after the sidecar starts a port that has not answered yet is taken as starting, not
   * failing: its failed probes are in the metrics but not reported. In milliseconds.
   */
  readonly startupGraceMs: number;
  /** Interface to listen on; default every interface. */
  readonly host?: string;
}

/** The sidecar's own settings (not set by the webhook): Go-style durations, `10s`, `500ms`. */
export const SIDECAR_TUNING_ENV = {
  probePeriod: 'CROWSNEST_GUARD_PROBE_PERIOD',
  probeTimeout: 'CROWSNEST_GUARD_PROBE_TIMEOUT',
  reportPeriod: 'CROWSNEST_GUARD_REPORT_PERIOD',
  startupGrace: 'CROWSNEST_GUARD_STARTUP_GRACE',
} as const;

export const DEFAULT_PROBE_PERIOD_MS = 10_000;
export const DEFAULT_PROBE_TIMEOUT_MS = 2_000;
export const DEFAULT_REPORT_PERIOD_MS = 15_000;
export const DEFAULT_STARTUP_GRACE_MS = 120_000;

/** A bad environment: the message names the variable. */
export class SidecarConfigError extends Error {
  override readonly name = 'SidecarConfigError';
}

const PROTOCOLS = new Set(['TCP', 'UDP', 'SCTP']);
const MAX_DECLARED_PORTS = 1024;

/** Reads and checks the sidecar's environment. */
export function sidecarConfigFromEnv(env: Readonly<Record<string, string | undefined>>): SidecarConfig {
  const required = (name: string): string => {
    const value = env[name]?.trim();
    if (!value) throw new SidecarConfigError(`${name} is not set (guard's webhook sets it when it injects the sidecar)`);
    return value;
  };
  const metricsText = required(SIDECAR_ENV.metricsPort);
  if (!isPort(metricsText)) throw new SidecarConfigError(`${SIDECAR_ENV.metricsPort} must be a port number from 1 to 65535, not "${metricsText}"`);
  const signalsUrl = required(SIDECAR_ENV.signalsUrl);
  if (!signalsUrl.startsWith('https://')) throw new SidecarConfigError(`${SIDECAR_ENV.signalsUrl} must be an https:// URL, not "${signalsUrl}"`);
  const duration = (name: string, fallbackMs: number, minMs: number): number => {
    const text = env[name]?.trim();
    if (!text) return fallbackMs;
    let ms: number | undefined;
    try {
      ms = Math.round(parseDuration(text));
    } catch {
      ms = undefined;
    }
    if (ms === undefined || ms < minMs) throw new SidecarConfigError(`${name} must be a duration of at least ${minMs} ms such as "10s" or "500ms", not "${text}"`);
    return ms;
  };
  const probePeriodMs = duration(SIDECAR_TUNING_ENV.probePeriod, DEFAULT_PROBE_PERIOD_MS, 100);
  const config: SidecarConfig = {
    podName: required(SIDECAR_ENV.podName),
    podNamespace: required(SIDECAR_ENV.podNamespace),
    podIp: env[SIDECAR_ENV.podIp]?.trim() || '127.0.0.1',
    nodeName: env[SIDECAR_ENV.nodeName]?.trim() || 'unknown',
    policyName: required(SIDECAR_ENV.policyName),
    signalsUrl,
    caBundle: required(SIDECAR_ENV.caBundle),
    tokenFile: required(SIDECAR_ENV.tokenFile),
    declaredPorts: parseDeclaredPorts(env[SIDECAR_ENV.declaredPorts]),
    metricsPort: Number(metricsText),
    probePeriodMs,
    // Unset, the timeout fits a short period: at most half of it.
    probeTimeoutMs: duration(SIDECAR_TUNING_ENV.probeTimeout, Math.min(DEFAULT_PROBE_TIMEOUT_MS, Math.floor(probePeriodMs / 2)), 10),
    reportPeriodMs: duration(SIDECAR_TUNING_ENV.reportPeriod, DEFAULT_REPORT_PERIOD_MS, 100),
    startupGraceMs: duration(SIDECAR_TUNING_ENV.startupGrace, DEFAULT_STARTUP_GRACE_MS, 0),
  };
  if (config.probeTimeoutMs >= config.probePeriodMs) {
    throw new SidecarConfigError(`${SIDECAR_TUNING_ENV.probeTimeout} (${config.probeTimeoutMs} ms) must be shorter than ${SIDECAR_TUNING_ENV.probePeriod} (${config.probePeriodMs} ms)`);
  }
  return config;
}

/** The JSON {@link DeclaredPort} list of {@link SIDECAR_ENV.declaredPorts}; unset or empty: none. */
export function parseDeclaredPorts(text: string | undefined): DeclaredPort[] {
  const name = SIDECAR_ENV.declaredPorts;
  if (!text?.trim()) return [];
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch {
    throw new SidecarConfigError(`${name} must be a JSON list of {container, port, protocol}, not ${JSON.stringify(text.slice(0, 80))}`);
  }
  if (!Array.isArray(value)) throw new SidecarConfigError(`${name} must be a JSON list of {container, port, protocol}`);
  if (value.length > MAX_DECLARED_PORTS) throw new SidecarConfigError(`${name} lists ${value.length} ports; at most ${MAX_DECLARED_PORTS}`);
  return value.map((entry: unknown, i) => {
    const e = entry as Partial<Record<keyof DeclaredPort, unknown>> | null;
    if (!e || typeof e !== 'object' || typeof e.container !== 'string' || !e.container
      || typeof e.port !== 'number' || !Number.isInteger(e.port) || e.port < 1 || e.port > 65_535
      || typeof e.protocol !== 'string' || !PROTOCOLS.has(e.protocol) || (e.name !== undefined && typeof e.name !== 'string')) {
      throw new SidecarConfigError(`${name}[${i}] must be {container: string, port: 1-65535, protocol: TCP|UDP|SCTP, name?: string}, not ${JSON.stringify(entry)}`);
    }
    return { container: e.container, port: e.port, protocol: e.protocol as DeclaredPort['protocol'], ...(e.name ? { name: e.name as string } : {}) };
  });
}

function isPort(text: string): boolean {
  return /^[1-9]\d{0,4}$/.test(text) && Number(text) <= 65_535;
}
