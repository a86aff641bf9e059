/**
 * Guard's detectors over pod status, as pure state machines: each observation of a pod (from the
 * cache, at a time the caller gives) updates what the detector remembers about it, and the
 * detector answers whether its threshold is crossed within its window, with the evidence.
 *
 * - Crash loop: restarts are counted as deltas of the containers' `restartCount` between
 *   observations, each stamped with the time it was seen. A pod first seen with restarts already
 *   counts the ones whose last termination finished inside the window (one per container: the
 *   status keeps only the last), so a new leader does not start blind.
 * - OOM kill: a container whose current or last termination says `OOMKilled`, each kill counted
 *   once (by container id or finish time) at its finish time.
 *
 * The state is the leader's memory; nothing here reads a clock or the API.
 */
import type { GuardPod, SlimContainerStatus, Termination } from './pods.ts';

/** A threshold crossed: what opens an incident. */
export interface Finding {
  readonly reason: string;
  readonly evidence: readonly string[];
}

interface Stamped {
  readonly atMs: number;
  readonly count: number;
}

const MAX_REMEMBERED = 256;

function parseTime(text: string | undefined): number | undefined {
  if (!text) return undefined;
  const ms = Date.parse(text);
  return Number.isNaN(ms) ? undefined : ms;
}

function prune(list: Stamped[], sinceMs: number): void {
  while (list.length > 0 && (list[0]!.atMs < sinceMs || list.length > MAX_REMEMBERED)) list.shift();
}

function sumSince(list: readonly Stamped[], sinceMs: number): number {
  let total = 0;
  for (const entry of list) if (entry.atMs >= sinceMs) total += entry.count;
  return total;
}

function describeTermination(t: Termination | undefined): string {
  if (!t) return '';
  return [t.reason ? `reason ${t.reason}` : '', t.exitCode !== undefined ? `exit code ${t.exitCode}` : '', t.finishedAt ? `at ${t.finishedAt}` : '']
    .filter(Boolean).join(', ');
}

function describeContainer(c: SlimContainerStatus): string {
  const last = describeTermination(c.lastTerminated ?? c.terminated);
  return `container ${c.name}: restartCount ${c.restartCount}${c.waitingReason ? `, waiting (${c.waitingReason})` : ''}${last ? `, last termination ${last}` : ''}`;
}

export function formatWindow(ms: number): string {
  if (ms % 3_600_000 === 0) return `${ms / 3_600_000}h`;
  if (ms % 60_000 === 0) return `${ms / 60_000}m`;
  return `${ms / 1000}s`;
}

/** Restarts of one pod's containers over time. */
export class RestartTracker {
  private readonly restarts: Stamped[] = [];
  private lastTotal: number | undefined;

  /** Records the pod as seen at `nowMs`; returns the restarts newly counted. */
  observe(pod: GuardPod, nowMs: number, windowMs: number): number {
    const total = pod.status.containers.reduce((sum, c) => sum + c.restartCount, 0);
    let added = 0;
    if (this.lastTotal === undefined) {
      for (const c of pod.status.containers) {
        const finished = parseTime(c.lastTerminated?.finishedAt);
        if (c.restartCount > 0 && finished !== undefined && finished >= nowMs - windowMs) {
          this.restarts.push({ atMs: finished, count: 1 });
          added++;
        }
      }
      this.restarts.sort((a, b) => a.atMs - b.atMs);
    } else if (total > this.lastTotal) {
      added = total - this.lastTotal;
      this.restarts.push({ atMs: nowMs, count: added });
    }
    this.lastTotal = total;
    prune(this.restarts, nowMs - windowMs);
    return added;
  }

  /** Restarts seen within `windowMs` before `nowMs`. */
  count(nowMs: number, windowMs: number): number {
    return sumSince(this.restarts, nowMs - windowMs);
  }

  /** The crash-loop finding when at least `threshold` restarts fall in the window. */
  finding(pod: GuardPod, nowMs: number, threshold: number, windowMs: number): Finding | undefined {
    const n = this.count(nowMs, windowMs);
    if (n < threshold) return undefined;
    const backOff = pod.status.containers.some((c) => c.waitingReason === 'CrashLoopBackOff');
    return {
      reason: 'CrashLoop',
      evidence: [
        `${n} container restarts within ${formatWindow(windowMs)} (threshold ${threshold})${backOff ? ', in CrashLoopBackOff' : ''}`,
        ...pod.status.containers.filter((c) => c.restartCount > 0).map(describeContainer),
      ],
    };
  }
}

/** OOM kills of one pod's containers over time. */
export class OomTracker {
  private readonly kills: Stamped[] = [];
  private readonly seen = new Set<string>();
  private readonly details: string[] = [];

  observe(pod: GuardPod, nowMs: number, windowMs: number): number {
    let added = 0;
    for (const c of pod.status.containers) {
      for (const t of [c.terminated, c.lastTerminated]) {
        if (t?.reason !== 'OOMKilled') continue;
        const key = `${c.name}/${t.containerID ?? ''}/${t.finishedAt ?? ''}`;
        if (this.seen.has(key)) continue;
        this.seen.add(key);
        const atMs = parseTime(t.finishedAt) ?? nowMs;
        if (atMs < nowMs - windowMs) continue;
        this.kills.push({ atMs, count: 1 });
        this.details.push(`container ${c.name} OOMKilled (${describeTermination(t)})`);
        if (this.details.length > 5) this.details.shift();
        added++;
      }
    }
    if (this.seen.size > MAX_REMEMBERED) this.seen.clear();
    this.kills.sort((a, b) => a.atMs - b.atMs);
    prune(this.kills, nowMs - windowMs);
    return added;
  }

  count(nowMs: number, windowMs: number): number {
    return sumSince(this.kills, nowMs - windowMs);
  }

  finding(nowMs: number, threshold: number, windowMs: number): Finding | undefined {
    const n = this.count(nowMs, windowMs);
    if (n < threshold) return undefined;
    return { reason: 'OOMKilled', evidence: [`${n} OOM kills within ${formatWindow(windowMs)} (threshold ${threshold})`, ...this.details] };
  }
}

/** Counts of a reported signal (failed probes, matching log lines) over time. */
export class CountTracker {
  private readonly counts: Stamped[] = [];
  private readonly samples: string[] = [];

  add(nowMs: number, count: number, windowMs: number, samples: readonly string[] = []): void {
    if (count > 0) this.counts.push({ atMs: nowMs, count });
    for (const s of samples) {
      this.samples.push(s);
      if (this.samples.length > 5) this.samples.shift();
    }
    prune(this.counts, nowMs - windowMs);
  }

  count(nowMs: number, windowMs: number): number {
    return sumSince(this.counts, nowMs - windowMs);
  }

  recentSamples(): readonly string[] {
    return [...this.samples];
  }
}
