/**
 * The health sidecar's metrics, on its own /metrics (the pod is the target; its labels come from
 * the scrape, so no pod label here):
 *
 * - `crowsnest_guard_sidecar_probes_total{container,port,method}` and
 *   `crowsnest_guard_sidecar_probe_failures_total{container,port,method,reason}`: every probe of a
 *   declared port, and the failed ones by reason (timeout, refused, reset, unreachable,
 *   http_status, protocol, other);
 * - `crowsnest_guard_sidecar_port_up{container,port,method}`: 1 when the last probe passed;
 * - `crowsnest_guard_sidecar_probe_duration_seconds{container,port,method}`: how long passing
 *   probes took (connect, or connect + GET until the status line);
 * - `crowsnest_guard_sidecar_listening_sockets{protocol,address,port}`: 1 per socket listening in
 *   the pod's network namespace at the last read (bounded by what the pod opens);
 * - `crowsnest_guard_sidecar_socket_reads_total{result}`: reads of /proc/net (ok, partial);
 * - `crowsnest_guard_sidecar_reports_total{result}` and
 *   `crowsnest_guard_sidecar_report_last_success_timestamp_seconds`: reports to the operator;
 * - `process_resident_memory_bytes`, `process_cpu_seconds_total`, `process_start_time_seconds`.
 */
import { Counter, exponentialBuckets, Gauge, Histogram, MetricRegistry, registerProcessMetrics } from '../../observe/lean/metrics.ts';
import type { DeclaredPort, ListeningSocket } from '../contract.ts';
import type { PortProbeOutcome } from './probe.ts';

/** Results of `crowsnest_guard_sidecar_reports_total`. */
export type ReportResult = 'accepted' | 'throttled' | 'rejected' | 'unauthorized' | 'forbidden' | 'untrusted' | 'unavailable' | 'error';

/** 1 ms doubling to ~4 s: a local connect takes well under a millisecond, a slow app's GET seconds. */
export const PROBE_BUCKETS = exponentialBuckets(0.001, 2, 13);

export class SidecarMetrics {
  readonly registry = new MetricRegistry();
  readonly probes = this.registry.register(new Counter({
    name: 'crowsnest_guard_sidecar_probes_total', help: 'Probes of a declared port of a sibling container (method http: GET /, tcp: connect).', labelNames: ['container', 'port', 'method'],
  }));
  readonly failures = this.registry.register(new Counter({
    name: 'crowsnest_guard_sidecar_probe_failures_total',
    help: 'Failed probes by reason: timeout, refused, reset, unreachable, http_status (5xx), protocol, other.',
    labelNames: ['container', 'port', 'method', 'reason'],
  }));
  readonly up = this.registry.register(new Gauge({
    name: 'crowsnest_guard_sidecar_port_up', help: '1 when the last probe of the port passed, else 0.', labelNames: ['container', 'port', 'method'],
  }));
  readonly duration = this.registry.register(new Histogram({
    name: 'crowsnest_guard_sidecar_probe_duration_seconds', help: 'Time a passing probe took.', labelNames: ['container', 'port', 'method'], buckets: PROBE_BUCKETS,
  }));
  readonly listening = this.registry.register(new Gauge({
    name: 'crowsnest_guard_sidecar_listening_sockets', help: 'Sockets listening in the pod\'s network namespace at the last read (TCP LISTEN, bound UDP): 1 each.',
    labelNames: ['protocol', 'address', 'port'],
  }));
  readonly socketReads = this.registry.register(new Counter({
    name: 'crowsnest_guard_sidecar_socket_reads_total', help: 'Reads of /proc/net/{tcp,tcp6,udp,udp6} by result: ok, partial (a table could not be read).', labelNames: ['result'],
  }));
  readonly reports = this.registry.register(new Counter({
    name: 'crowsnest_guard_sidecar_reports_total',
    help: 'Health reports sent to the operator by result: accepted, throttled (429/503), rejected (400/413), unauthorized, forbidden, untrusted (TLS), unavailable, error.',
    labelNames: ['result'],
  }));
  readonly lastReport = this.registry.register(new Gauge({
    name: 'crowsnest_guard_sidecar_report_last_success_timestamp_seconds', help: 'When the operator last accepted a report (Unix time).', labelNames: [],
  }));

  constructor(startTimeSeconds = Date.now() / 1000) {
    registerProcessMetrics(this.registry, startTimeSeconds);
  }

  /** Records one probe of `port`. */
  record(port: DeclaredPort, outcome: PortProbeOutcome): void {
    const labels = { container: port.container, port: String(port.port), method: outcome.method };
    this.probes.inc(labels);
    // The method of a port is learnt: drop the series of the method it no longer has.
    this.up.remove({ container: port.container, port: String(port.port), method: outcome.method === 'http' ? 'tcp' : 'http' });
    if (outcome.ok) {
      this.up.set(labels, 1);
      this.duration.observe(labels, outcome.seconds);
    } else {
      this.up.set(labels, 0);
      this.failures.inc({ ...labels, reason: outcome.reason });
    }
  }

  /** Replaces the listening-socket series with `sockets`. */
  setListening(sockets: readonly ListeningSocket[]): void {
    this.listening.remove({});
    for (const socket of sockets) this.listening.set({ protocol: socket.protocol, address: socket.address, port: String(socket.port) }, 1);
  }
}
