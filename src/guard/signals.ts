/**
 * What guard's in-pod parts reported, kept on the leader per pod uid: failed health probes and
 * matching log lines as counts over time, and the sockets listening in the pod at its last report.
 * The endpoint (endpoint.ts) writes; the controller reads when it reconciles the pod's policy.
 */
import { CountTracker } from './detect.ts';
import type { ListeningSocket, LogCount, PortHealth } from './contract.ts';

/** Longest window any detector may ask for (the API's maximum): older counts are dropped. */
const KEEP_MS = 24 * 3_600_000;

export interface PodSignals {
  readonly healthFailures: CountTracker;
  readonly probes: CountTracker;
  readonly errorLines: CountTracker;
  readonly logLines: CountTracker;
  listening: readonly ListeningSocket[] | undefined;
  lastPortHealth: readonly PortHealth[];
  lastSequence: number;
  lastReportMs: number;
}

export class GuardSignals {
  private readonly pods = new Map<string, PodSignals>();
  /** Log batches already counted, per node: `batchId`s of the last hour are kept. */
  private readonly batches = new Map<string, Map<number, number>>();

  of(podUid: string): PodSignals | undefined {
    return this.pods.get(podUid);
  }

  private ensure(podUid: string): PodSignals {
    let signals = this.pods.get(podUid);
    if (!signals) {
      signals = {
        healthFailures: new CountTracker(), probes: new CountTracker(), errorLines: new CountTracker(), logLines: new CountTracker(),
        listening: undefined, lastPortHealth: [], lastSequence: -1, lastReportMs: 0,
      };
      this.pods.set(podUid, signals);
    }
    return signals;
  }

  /**
   * Keeps a sidecar's report; false when it repeats the last sequence (a retry of a report whose
   * answer was lost). A lower sequence is a restarted sidecar counting from the start again: kept.
   */
  recordHealth(podUid: string, sequence: number, ports: readonly PortHealth[], listening: readonly ListeningSocket[], nowMs: number): boolean {
    const signals = this.ensure(podUid);
    if (sequence === signals.lastSequence) return false;
    signals.lastSequence = sequence;
    const failures = ports.reduce((sum, p) => sum + p.failures, 0);
    const probes = ports.reduce((sum, p) => sum + p.probes, 0);
    const reasons = ports.filter((p) => p.failures > 0).map((p) => `${p.container}:${p.port} (${p.method}) ${p.failures}/${p.probes} failed${p.lastFailure ? `, last: ${p.lastFailure}` : ''}`);
    signals.healthFailures.add(nowMs, failures, KEEP_MS, reasons);
    signals.probes.add(nowMs, probes, KEEP_MS);
    signals.listening = listening;
    signals.lastPortHealth = ports;
    signals.lastReportMs = nowMs;
    return true;
  }

  /** Whether the batch `batchId` of `node` was counted already (then it is not counted again). */
  seenBatch(node: string, batchId: number): boolean {
    return this.batches.get(node)?.has(batchId) ?? false;
  }

  /** Counts a log agent's batch once. */
  recordLogs(node: string, batchId: number, counts: readonly LogCount[], nowMs: number): void {
    let seen = this.batches.get(node);
    if (!seen) {
      seen = new Map();
      this.batches.set(node, seen);
    }
    seen.set(batchId, nowMs);
    for (const [id, at] of seen) if (at < nowMs - 3_600_000) seen.delete(id);
    for (const count of counts) {
      const signals = this.ensure(count.podUid);
      signals.errorLines.add(nowMs, count.matched, KEEP_MS, count.samples.map((s) => `${count.container}: ${s}`));
      signals.logLines.add(nowMs, count.lines, KEEP_MS);
      signals.lastReportMs = nowMs;
    }
  }

  /** Drops what is kept about pods no longer in `alive`. */
  retain(alive: ReadonlySet<string>): void {
    for (const uid of this.pods.keys()) if (!alive.has(uid)) this.pods.delete(uid);
  }
}

const LOOPBACK = /^(127\.|::1$|0{0,4}(:0{0,4}){0,6}:0{0,3}1$)/;

/**
 * Sockets listening on a port no container of the pod declares (with that protocol). Loopback
 * listeners are left out: nothing outside the pod reaches them.
 */
export function undeclaredListeners(listening: readonly ListeningSocket[], declared: ReadonlyArray<{ readonly port: number; readonly protocol: string }>): ListeningSocket[] {
  const allowed = new Set(declared.map((p) => `${p.protocol}/${p.port}`));
  return listening.filter((s) => !LOOPBACK.test(s.address) && !allowed.has(`${s.protocol}/${s.port}`));
}
