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
import { readFile } from 'node:fs/promises';
import { sleep, type Clock } from '../../kube/clock.ts';
import type { Logger } from '../../kube/logger-type.ts';
import { type Peer, type PeerResult, type ProbeSettings, SYNC_PATH, type SyncRequest, type SyncResponse } from '../contract.ts';
import type { AgentMetrics, SyncResult } from './agent-metrics.ts';
import { HttpConnection, openSocket } from '../../observe/lean/http.ts';

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
const DEFAULT_REQUEST_TIMEOUT_MS = 5_000;
const DEFAULT_SYNC_AFTER_MS = 5_000;
const JITTER = 0.1;

/** TLS errors that mean "this is not the server the CA we were given vouches for". */
const UNTRUSTED_CODES = new Set([
  'UNABLE_TO_VERIFY_LEAF_SIGNATURE', 'UNABLE_TO_GET_ISSUER_CERT', 'UNABLE_TO_GET_ISSUER_CERT_LOCALLY', 'SELF_SIGNED_CERT_IN_CHAIN',
  'DEPTH_ZERO_SELF_SIGNED_CERT', 'CERT_SIGNATURE_FAILURE', 'CERT_HAS_EXPIRED', 'CERT_NOT_YET_VALID', 'ERR_TLS_CERT_ALTNAME_INVALID',
]);

type Attempt = { readonly ok: true; readonly nextInMs: number } | { readonly ok: false; readonly result: SyncResult; readonly message: string };

export class PeerSync {
  private readonly options: PeerSyncOptions;
  private readonly target: { readonly host: string; readonly port: number; readonly hostHeader: string };
  private readonly random: () => number;
  private connection: HttpConnection | undefined;
  private version = '';
  private lastFailure: string | undefined;

  constructor(options: PeerSyncOptions) {
    this.options = options;
    this.random = options.random ?? Math.random;
    const url = new URL(options.url);
    if (url.protocol !== 'https:') throw new Error(`the peer endpoint must be https: ${options.url}`);
    const host = url.hostname.replace(/^\[(.*)\]$/, '$1');
    this.target = { host, port: Number(url.port || 443), hostHeader: url.host };
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
    this.connection?.close();
  }

  /** One request; never throws. */
  async syncOnce(): Promise<Attempt> {
    const attempt = await this.attempt();
    this.options.metrics.syncs.inc({ result: attempt.ok ? (attempt.changed ? 'changed' : 'unchanged') : attempt.result });
    if (attempt.ok) this.options.metrics.lastSync.set({}, this.options.clock.now() / 1000);
    return attempt;
  }

  private async attempt(): Promise<Attempt & { changed?: boolean }> {
    let token: string;
    try {
      token = (await readFile(this.options.tokenFile, 'utf8')).trim();
    } catch (err) {
      return { ok: false, result: 'error', message: `cannot read the ServiceAccount token at ${this.options.tokenFile}: ${(err as Error).message}` };
    }
    const body: SyncRequest = { version: this.version, results: this.options.results() };
    let response: Awaited<ReturnType<HttpConnection['request']>>;
    try {
      const connection = await this.connected();
      response = await connection.request({
        method: 'POST', path: SYNC_PATH, host: this.target.hostHeader,
        headers: { Authorization: `Bearer ${token}`, 'Content-Type': 'application/json', Accept: 'application/json' },
        body: JSON.stringify(body),
      }, performance.now() + this.timeoutMs);
    } catch (err) {
      this.connection?.close();
      this.connection = undefined;
      const code = (err as { code?: string }).code ?? '';
      if (UNTRUSTED_CODES.has(code)) {
        return {
          ok: false, result: 'untrusted',
          message: `the operator's peer endpoint presented a certificate the CA this pod was given does not vouch for (${code}); if the operator's CA was rotated, restart this pod to get the current one`,
        };
      }
      return { ok: false, result: 'unavailable', message: `peer endpoint unreachable: ${(err as Error).message}` };
    }
    if (response.status === 401) return { ok: false, result: 'unauthorized', message: 'the peer endpoint refused this pod\'s token (401)' };
    if (response.status === 403) return { ok: false, result: 'forbidden', message: `the peer endpoint has no peers for this pod (403): ${response.body.toString().trim()}` };
    if (response.status !== 200) return { ok: false, result: 'unavailable', message: `the peer endpoint answered ${response.status}: ${response.body.toString().trim().slice(0, 200)}` };
    let answer: SyncResponse;
    try {
      answer = JSON.parse(response.body.toString()) as SyncResponse;
    } catch {
      return { ok: false, result: 'error', message: 'the peer endpoint answered something that is not JSON' };
    }
    if (answer.changed) {
      this.version = answer.version;
      this.options.metrics.peers.set({}, answer.peers.length);
      this.options.onUpdate(answer.peers, answer.settings);
    }
    if (!answer.reportAccepted) {
      // Next time, maybe the leader.
      this.connection?.close();
      this.connection = undefined;
    }
    return { ok: true, nextInMs: answer.syncAfterMs > 0 ? answer.syncAfterMs : DEFAULT_SYNC_AFTER_MS, changed: answer.changed };
  }

  private async connected(): Promise<HttpConnection> {
    if (this.connection?.usable) return this.connection;
    this.connection?.close();
    const socket = await openSocket({ host: this.target.host, port: this.target.port, tls: { ca: this.options.ca } }, performance.now() + this.timeoutMs);
    this.connection = new HttpConnection(socket);
    return this.connection;
  }

  private get timeoutMs(): number {
    return this.options.requestTimeoutMs ?? DEFAULT_REQUEST_TIMEOUT_MS;
  }
}
