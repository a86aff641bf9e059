/**
 * The agent's metrics, and how one probe round lands in them.
 *
 * - `crowsnest_prober_rtt_seconds{source_pod,dest_pod,source_node,dest_node,method}`: buckets
 *   from 50 µs doubling to ~3.3 s (17), enough resolution for a heatmap per node pair, and
 *   bounded cardinality: each agent has at most `neighbours` destinations.
 * - `crowsnest_prober_errors_total{source_pod,dest_pod,source_node,dest_node,method,reason}`:
 *   failed probes by reason; a failure is never an RTT sample.
 * - `netprober_interpod_latency_s{dest_pod_name,dest_ip}`: the seed's histogram with its buckets
 *   (10 µs × 2^k, 25 of them), fed by the HTTP probe as the seed's was, so its dashboards keep
 *   working.
 * - `crowsnest_prober_peers`, `crowsnest_prober_peer_syncs_total{result}`,
 *   `crowsnest_prober_peer_sync_last_success_timestamp_seconds`: what the agent knows of its
 *   peers and how fresh that is.
 * - `process_resident_memory_bytes`, `process_cpu_seconds_total`, `process_start_time_seconds`:
 *   the agent's own cost, under the names Prometheus clients use.
 *
 * A peer that leaves takes its series with it ({@link AgentMetrics.forgetPeer}).
 */
import type { FailureReason, Peer, ProbeMethod } from '../contract.ts';
import { Counter, exponentialBuckets, Gauge, Histogram, MetricRegistry, registerProcessMetrics } from '../../observe/lean/metrics.ts';
import type { ProbeOutcome } from './probe.ts';

export const RTT_BUCKETS = exponentialBuckets(0.00005, 2, 17);
export const SEED_BUCKETS = exponentialBuckets(0.00001, 2, 25);

/** Where the agent runs: the source labels of its series. */
export interface AgentIdentity {
  readonly pod: string;
  readonly node: string;
}

export type SyncResult = 'changed' | 'unchanged' | 'unauthorized' | 'forbidden' | 'untrusted' | 'unavailable' | 'error';

export class AgentMetrics {
  readonly registry = new MetricRegistry();
  readonly rtt = this.registry.register(new Histogram({
    name: 'crowsnest_prober_rtt_seconds',
    help: 'Round-trip time to a peer pod: method http is GET /ping on a kept-alive connection, tcp is a new TCP connection.',
    labelNames: ['source_pod', 'dest_pod', 'source_node', 'dest_node', 'method'],
    buckets: RTT_BUCKETS,
  }));
  readonly errors = this.registry.register(new Counter({
    name: 'crowsnest_prober_errors_total',
    help: 'Probes that failed, by reason (timeout, refused, reset, unreachable, http_status, protocol, other); they are not RTT samples.',
    labelNames: ['source_pod', 'dest_pod', 'source_node', 'dest_node', 'method', 'reason'],
  }));
  readonly seedLatency = this.registry.register(new Histogram({
    name: 'netprober_interpod_latency_s',
    help: 'Round-trip time of GET /ping to a peer pod, in seconds (the name and buckets of k8s-network-prober-operator).',
    labelNames: ['dest_pod_name', 'dest_ip'],
    buckets: SEED_BUCKETS,
  }));
  readonly peers = this.registry.register(new Gauge({ name: 'crowsnest_prober_peers', help: 'Peers this agent probes.', labelNames: [] }));
  readonly syncs = this.registry.register(new Counter({
    name: 'crowsnest_prober_peer_syncs_total',
    help: 'Requests to the operator\'s peer endpoint by result: changed, unchanged, unauthorized, forbidden, untrusted (TLS), unavailable, error.',
    labelNames: ['result'],
  }));
  readonly lastSync = this.registry.register(new Gauge({
    name: 'crowsnest_prober_peer_sync_last_success_timestamp_seconds', help: 'When the peer list was last confirmed by the operator (Unix time).', labelNames: [],
  }));
  private readonly identity: AgentIdentity;

  constructor(identity: AgentIdentity, startTimeSeconds = Date.now() / 1000) {
    this.identity = identity;
    registerProcessMetrics(this.registry, startTimeSeconds);
    this.peers.set({}, 0);
  }

  /** Records one probe of `peer` by `method`. */
  record(peer: Peer, method: ProbeMethod, outcome: ProbeOutcome): void {
    const labels = { source_pod: this.identity.pod, dest_pod: peer.name, source_node: this.identity.node, dest_node: peer.node, method };
    if (outcome.ok) {
      this.rtt.observe(labels, outcome.rttSeconds);
      if (method === 'http') this.seedLatency.observe({ dest_pod_name: peer.name, dest_ip: peer.ip }, outcome.rttSeconds);
    } else {
      this.errors.inc({ ...labels, reason: outcome.reason satisfies FailureReason });
    }
  }

  /** Drops every series about `peer`. */
  forgetPeer(peer: Peer): void {
    this.rtt.remove({ dest_pod: peer.name });
    this.errors.remove({ dest_pod: peer.name });
    this.seedLatency.remove({ dest_pod_name: peer.name });
  }
}
