/**
 * The operator's half of peer discovery, from its caches only (no API call per request):
 *
 * - {@link PeerDirectory.answer}: what an agent gets when it syncs — its peers on the ring of its
 *   NetworkProber and the probe settings, or why it gets none. Rings are built once per change of
 *   the namespace's pods or the prober's spec, not per request. The answer's `version` is a hash
 *   of its content, the same on every replica, so an agent that lands on another replica is not
 *   sent an unchanged list again.
 * - {@link ReachabilityReports}: what the agents said about their peers, kept by the leader (a
 *   standby answers peers but keeps no report: the agent then tries another replica), and
 *   summarised into the status's pair counts.
 */
import { createHash } from 'node:crypto';
import { durationMs } from '../kube/api/schema.ts';
import type { NetworkProber } from './api.ts';
import { type Peer, PROBER_ANNOTATION, type PeerResult, type ProbeSettings, type SyncRequest, type SyncResponse } from './contract.ts';
import { asPeer, isMember, type SlimPod } from './members.ts';
import { NeighbourRing, ringHash } from './ring.ts';

/** Read access to the caches the directory needs; NEVER modify what they return. */
export interface ProberCacheView {
  prober(namespace: string, name: string): NetworkProber | undefined;
  pod(namespace: string, name: string): SlimPod | undefined;
  /** The injected pods of a namespace. */
  podsIn(namespace: string): readonly SlimPod[];
}

/** How often agents sync, in milliseconds: a pod change reaches its probers within about this plus the cache's lag. */
export const SYNC_INTERVAL_MS = 5_000;
/** While the agent's own pod is not Running yet: sync again soon. */
const PENDING_SYNC_MS = 1_000;
const DEFAULT_POLLING_PERIOD = '10s';
const DEFAULT_TIMEOUT = '1s';
const DEFAULT_NEIGHBOURS = 10;
/** Past this many remembered ring positions (pods that came and went), start over. */
const MAX_REMEMBERED_HASHES = 200_000;

export type DirectoryAnswer =
  | { readonly status: 200; readonly response: SyncResponse; readonly proberKey: string }
  | { readonly status: 403 | 503; readonly message: string };

interface RingEntry {
  readonly epoch: number;
  readonly generation: number | undefined;
  readonly ring: NeighbourRing<Peer>;
}

export class PeerDirectory {
  private readonly cache: ProberCacheView;
  private readonly rings = new Map<string, RingEntry>();
  private readonly epochs = new Map<string, number>();
  /** Ring positions by uid: rings are rebuilt on every pod change, hashes need not be. */
  private readonly hashes = new Map<string, string>();

  constructor(cache: ProberCacheView) {
    this.cache = cache;
  }

  /** Something about the pods or probers of `namespace` changed: rings there are rebuilt on next use. */
  invalidate(namespace: string): void {
    this.epochs.set(namespace, (this.epochs.get(namespace) ?? 0) + 1);
  }

  /** The ring of `prober`'s members, rebuilt only after a change. */
  ring(prober: NetworkProber): NeighbourRing<Peer> {
    const namespace = prober.metadata?.namespace ?? '';
    const key = `${namespace}/${prober.metadata?.name ?? ''}`;
    const epoch = this.epochs.get(namespace) ?? 0;
    const cached = this.rings.get(key);
    if (cached && cached.epoch === epoch && cached.generation === prober.metadata?.generation) return cached.ring;
    const members = this.cache.podsIn(namespace).filter((pod) => isMember(prober, pod)).map(asPeer);
    if (this.hashes.size > MAX_REMEMBERED_HASHES) this.hashes.clear();
    const ring = new NeighbourRing(members, (uid) => {
      let hash = this.hashes.get(uid);
      if (hash === undefined) { hash = ringHash(uid); this.hashes.set(uid, hash); }
      return hash;
    });
    this.rings.set(key, { epoch, generation: prober.metadata?.generation, ring });
    return ring;
  }

  /** Forgets the ring of a deleted prober. */
  forget(namespace: string, name: string): void {
    this.rings.delete(`${namespace}/${name}`);
  }

  /** What the agent of pod `namespace/name` (uid `uid`) gets for `request`. */
  answer(namespace: string, name: string, uid: string, request: SyncRequest, reportAccepted: boolean): DirectoryAnswer {
    const pod = this.cache.pod(namespace, name);
    if (!pod || pod.metadata.uid !== uid) return { status: 503, message: `pod ${namespace}/${name} is not in the operator's cache yet; try again` };
    const proberName = pod.metadata.annotations?.[PROBER_ANNOTATION];
    if (!proberName) return { status: 403, message: `pod ${namespace}/${name} was not injected by a NetworkProber` };
    const prober = this.cache.prober(namespace, proberName);
    if (!prober || prober.metadata?.deletionTimestamp) return { status: 403, message: `NetworkProber ${namespace}/${proberName} no longer exists` };
    const proberKey = `${namespace}/${proberName}`;
    const settings = probeSettings(prober);
    if (!isMember(prober, pod)) {
      if (!pod.metadata.deletionTimestamp && pod.status.phase !== 'Running') {
        return { status: 200, proberKey, response: respond(request, [], settings, reportAccepted, PENDING_SYNC_MS) };
      }
      return { status: 403, message: `pod ${namespace}/${name} is no longer selected by NetworkProber ${proberKey}` };
    }
    const peers = this.ring(prober).peersOf(uid, prober.spec.neighbours ?? DEFAULT_NEIGHBOURS);
    return { status: 200, proberKey, response: respond(request, peers, settings, reportAccepted, SYNC_INTERVAL_MS) };
  }
}

/** The probe settings of a NetworkProber, in milliseconds. */
export function probeSettings(prober: NetworkProber): ProbeSettings {
  return { pollingPeriodMs: durationMs(prober.spec.pollingPeriod ?? DEFAULT_POLLING_PERIOD), timeoutMs: durationMs(prober.spec.timeout ?? DEFAULT_TIMEOUT) };
}

function respond(request: SyncRequest, peers: readonly Peer[], settings: ProbeSettings, reportAccepted: boolean, syncAfterMs: number): SyncResponse {
  const sorted = [...peers].sort((a, b) => (a.uid < b.uid ? -1 : 1));
  const version = createHash('sha256').update(JSON.stringify({ peers: sorted, settings })).digest('hex').slice(0, 16);
  if (version === request.version) return { version, changed: false, reportAccepted, syncAfterMs };
  return { version, changed: true, peers: sorted, settings, reportAccepted, syncAfterMs };
}

// ---------------------------------------------------------------------------------------------
// Reports

/** What the status says about a prober's pairs. */
export interface PairSummary {
  readonly reachable: number;
  readonly unreachable: number;
  /** Pairs whose source has not reported on them (yet). */
  readonly unknown: number;
  /** Members whose agent reported within the freshness window. */
  readonly reportingMembers: number;
  /** A few unreachable pairs, for messages: `source → dest (reason)`. */
  readonly examples: readonly string[];
}

interface Report {
  readonly atMs: number;
  readonly results: ReadonlyMap<string, PeerResult>;
}

/** A report older than this no longer counts (agents send one every {@link SYNC_INTERVAL_MS}). */
export const REPORT_FRESHNESS_MS = 30_000;
const MAX_EXAMPLES = 5;

export class ReachabilityReports {
  private readonly byProber = new Map<string, Map<string, Report>>();

  /** Keeps `source`'s latest report for the prober `proberKey` (`namespace/name`). */
  record(proberKey: string, sourceUid: string, results: readonly PeerResult[], nowMs: number): void {
    let reports = this.byProber.get(proberKey);
    if (!reports) { reports = new Map(); this.byProber.set(proberKey, reports); }
    reports.set(sourceUid, { atMs: nowMs, results: new Map(results.map((r) => [r.uid, r])) });
  }

  /** Pair counts of `ring` (with `neighbours`) from the fresh reports; drops reports of non-members. */
  summarize(proberKey: string, ring: NeighbourRing<Peer>, neighbours: number, nowMs: number, freshnessMs = REPORT_FRESHNESS_MS): PairSummary {
    const reports = this.byProber.get(proberKey) ?? new Map<string, Report>();
    for (const source of reports.keys()) if (!ring.has(source)) reports.delete(source);
    let reachable = 0;
    let unreachable = 0;
    let unknown = 0;
    let reportingMembers = 0;
    const examples: string[] = [];
    for (const [source, dest] of ring.pairs(neighbours)) {
      const report = reports.get(source.uid);
      const fresh = report && nowMs - report.atMs <= freshnessMs;
      const result = fresh ? report.results.get(dest.uid) : undefined;
      if (!result) unknown++;
      else if (result.reachable) reachable++;
      else {
        unreachable++;
        if (examples.length < MAX_EXAMPLES) examples.push(`${source.name} → ${dest.name}${result.reason ? ` (${result.reason})` : ''}`);
      }
    }
    for (const [source, report] of reports) if (nowMs - report.atMs <= freshnessMs && ring.has(source)) reportingMembers++;
    return { reachable, unreachable, unknown, reportingMembers, examples };
  }

  /** Forgets a deleted prober's reports. */
  forget(proberKey: string): void {
    this.byProber.delete(proberKey);
  }
}
