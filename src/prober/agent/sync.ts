/**
 * The agent's side of peer discovery: every few seconds, one HTTPS request to the operator's peer
 * endpoint, authenticated with the pod's projected ServiceAccount token (audience
 * crowsnest.dev/prober, read from its file each time: the kubelet rotates it). The request carries
 * the outcome of the last probe of each peer; the answer carries the peers (when they changed
 * since the version the agent holds) and the probe settings of the NetworkProber.
 *
 * The connection is kept alive between syncs. A replica that does not lead answers peers but
 * keeps no report (`reportAccepted: false`): the agent then closes the connection so its next sync
 * may land on another replica, and its reports reach the leader, which writes the status.
 *
 * Failures back off from 1 s to 30 s. The agent keeps probing the peers it has meanwhile: an
 * operator restart or a leader change never stops the measurements.
 */
import { sleep, type Clock } from '../../kube/clock.ts';
import type { Logger } from '../../kube/logger-type.ts';
import { OperatorEndpoint } from '../../observe/lean/endpoint.ts';
import { type Peer, type PeerResult, type ProbeSettings, SYNC_PATH, type SyncRequest, type SyncResponse } from '../contract.ts';
import type { AgentMetrics, SyncResult } from './agent-metrics.ts';

export interface PeerSyncOptions {
  /** `https://host:port` of the peer endpoint. */
  readonly url: string;
  /** PEM bundle trusted for it. */
  readonly ca: string;
  readonly tokenFile: string;
  readonly clock: Clock;
  readonly logger: Logger;
  readonly metrics: AgentMetrics;
  /** The last outcome per peer, sent with each sync. */
  readonly results: () => readonly PeerResult[];
  /** New peers or settings. */
  readonly onUpdate: (peers: readonly Peer[], settings: ProbeSettings) => void;
  /** Per request, in milliseconds. Default 5 000. */
  readonly requestTimeoutMs?: number;
  readonly random?: () => number;
}

const BACKOFF = { initialMs: 1_000, maxMs: 30_000 } as const;
const DEFAULT_SYNC_AFTER_MS = 5_000;
const JITTER = 0.1;

type Attempt = { readonly ok: true; readonly nextInMs: number } | { readonly ok: false; readonly result: SyncResult; readonly message: string };

export class PeerSync {
  private readonly options: PeerSyncOptions;
  private readonly endpoint: OperatorEndpoint;
  private readonly random: () => number;
  private version = '';
  private lastFailure: string | undefined;

  constructor(options: PeerSyncOptions) {
    this.options = options;
    this.random = options.random ?? Math.random;
    this.endpoint = new OperatorEndpoint({ url: options.url, ca: options.ca, tokenFile: options.tokenFile, ...(options.requestTimeoutMs ? { requestTimeoutMs: options.requestTimeoutMs } : {}) });
  }

  /** Syncs until `signal` aborts. */
  async run(signal: AbortSignal): Promise<void> {
    let failures = 0;
    while (!signal.aborted) {
      const attempt = await this.syncOnce();
      let waitMs: number;
      if (attempt.ok) {
        if (this.lastFailure) this.options.logger.info({}, 'peer endpoint reachable again');
        this.lastFailure = undefined;
        failures = 0;
        waitMs = attempt.nextInMs * (1 + JITTER * (2 * this.random() - 1));
      } else {
        failures++;
        // Log a failure when it changes, not on every retry.
        if (attempt.message !== this.lastFailure) this.options.logger.warn({ result: attempt.result, url: this.options.url }, attempt.message);
        this.lastFailure = attempt.message;
        waitMs = Math.min(BACKOFF.maxMs, BACKOFF.initialMs * 2 ** (failures - 1)) * (0.5 + 0.5 * this.random());
      }
      await sleep(this.options.clock, waitMs, signal);
    }
    this.endpoint.disconnect();
  }

  /** One request; never throws. */
  async syncOnce(): Promise<Attempt> {
    const attempt = await this.attempt();
    this.options.metrics.syncs.inc({ result: attempt.ok ? (attempt.changed ? 'changed' : 'unchanged') : attempt.result });
    if (attempt.ok) this.options.metrics.lastSync.set({}, this.options.clock.now() / 1000);
    return attempt;
  }

  private async attempt(): Promise<Attempt & { changed?: boolean }> {
    const body: SyncRequest = { version: this.version, results: this.options.results() };
    const answer = await this.endpoint.post(SYNC_PATH, body);
    if (!answer.ok) {
      return { ok: false, result: answer.failure === 'token' ? 'error' : answer.failure, message: answer.message };
    }
    const { response } = answer;
    if (response.status === 401) return { ok: false, result: 'unauthorized', message: 'the peer endpoint refused this pod\'s token (401)' };
    if (response.status === 403) return { ok: false, result: 'forbidden', message: `the peer endpoint has no peers for this pod (403): ${response.body.toString().trim()}` };
    if (response.status !== 200) return { ok: false, result: 'unavailable', message: `the peer endpoint answered ${response.status}: ${response.body.toString().trim().slice(0, 200)}` };
    let sync: SyncResponse;
    try {
      sync = JSON.parse(response.body.toString()) as SyncResponse;
    } catch {
      return { ok: false, result: 'error', message: 'the peer endpoint answered something that is not JSON' };
    }
    if (sync.changed) {
      this.version = sync.version;
      this.options.metrics.peers.set({}, sync.peers.length);
      this.options.onUpdate(sync.peers, sync.settings);
    }
    // Next time, maybe the leader.
    if (!sync.reportAccepted) this.endpoint.disconnect();
    return { ok: true, nextInMs: sync.syncAfterMs > 0 ? sync.syncAfterMs : DEFAULT_SYNC_AFTER_MS, changed: sync.changed };
  }
}
