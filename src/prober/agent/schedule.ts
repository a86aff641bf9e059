/**
 * When each peer is probed. Every peer has its own timer (Goldpinger's per-peer pingers): the
 * first round at a random point of the first period, so a hundred peers learned at once are not
 * probed in one burst, then one round per period, each interval jittered by ±15 % so the agents
 * of a cluster drift apart instead of probing in lockstep. A round that runs long (two probes,
 * each up to the timeout) delays the next one of the same peer; one peer never has two rounds at
 * once.
 *
 * A peer that leaves is forgotten after its running round, if any, finishes — so the series the
 * round records are removed after it, not recreated by it.
 */
import type { Clock, TimerHandle } from '../../kube/clock.ts';
import type { Peer, ProbeSettings } from '../contract.ts';

export interface ProbeSchedulerOptions {
  readonly clock: Clock;
  /** Probes `peer` once (both methods) and records the outcome. Must not reject. */
  readonly round: (peer: Peer, timeoutMs: number) => Promise<void>;
  /** Called once per peer that left, after its last round. */
  readonly onPeerRemoved?: (peer: Peer) => void;
  /** Uniform in [0, 1). Default Math.random. */
  readonly random?: () => number;
  /** Interval jitter as a fraction of the period. Default 0.15. */
  readonly jitter?: number;
}

interface Entry {
  readonly peer: Peer;
  timer: TimerHandle | undefined;
  /** When the timer fires (ms since the epoch), while one is set. */
  dueAt: number;
  running: Promise<void> | undefined;
  removed: boolean;
}

export const DEFAULT_JITTER = 0.15;

export class ProbeScheduler {
  private readonly options: ProbeSchedulerOptions;
  private readonly random: () => number;
  private readonly jitter: number;
  private readonly entries = new Map<string, Entry>();
  private settings: ProbeSettings | undefined;
  private stopped = false;

  constructor(options: ProbeSchedulerOptions) {
    this.options = options;
    this.random = options.random ?? Math.random;
    this.jitter = options.jitter ?? DEFAULT_JITTER;
  }

  /** The peers being probed. */
  get peers(): Peer[] {
    return [...this.entries.values()].map((e) => e.peer);
  }

  /** Replaces the peer set and the settings; peers that stay keep their schedule. */
  update(peers: readonly Peer[], settings: ProbeSettings): void {
    if (this.stopped) return;
    const previousPeriod = this.settings?.pollingPeriodMs;
    this.settings = settings;
    const wanted = new Map(peers.map((p) => [identity(p), p]));
    for (const [key, entry] of this.entries) {
      if (!wanted.has(key)) this.remove(key, entry);
    }
    const now = this.options.clock.now();
    for (const [key, peer] of wanted) {
      const entry = this.entries.get(key);
      if (!entry) {
        const added: Entry = { peer, timer: undefined, dueAt: 0, running: undefined, removed: false };
        this.entries.set(key, added);
        this.schedule(added, this.random() * settings.pollingPeriodMs);
      } else if (previousPeriod !== undefined && settings.pollingPeriodMs < previousPeriod && entry.timer && entry.dueAt - now > settings.pollingPeriodMs) {
        // A shorter period applies now, not after the rest of a long one.
        this.schedule(entry, this.random() * settings.pollingPeriodMs);
      }
    }
  }

  /** Stops every timer and waits for running rounds. */
  async stop(): Promise<void> {
    this.stopped = true;
    const running: Array<Promise<void>> = [];
    for (const entry of this.entries.values()) {
      if (entry.timer) this.options.clock.clearTimer(entry.timer);
      entry.timer = undefined;
      if (entry.running) running.push(entry.running);
    }
    await Promise.all(running);
  }

  private remove(key: string, entry: Entry): void {
    this.entries.delete(key);
    entry.removed = true;
    if (entry.timer) this.options.clock.clearTimer(entry.timer);
    entry.timer = undefined;
    if (!entry.running) this.options.onPeerRemoved?.(entry.peer);
  }

  private schedule(entry: Entry, delayMs: number): void {
    if (entry.timer) this.options.clock.clearTimer(entry.timer);
    const delay = Math.max(0, delayMs);
    entry.dueAt = this.options.clock.now() + delay;
    entry.timer = this.options.clock.setTimer(() => this.run(entry), delay);
  }

  private run(entry: Entry): void {
    entry.timer = undefined;
    const settings = this.settings;
    if (!settings || entry.removed || this.stopped) return;
    const startedAt = this.options.clock.now();
    entry.running = this.options.round(entry.peer, settings.timeoutMs).catch(() => {}).finally(() => {
      entry.running = undefined;
      if (entry.removed) {
        this.options.onPeerRemoved?.(entry.peer);
        return;
      }
      if (this.stopped || !this.settings) return;
      const interval = this.settings.pollingPeriodMs * (1 + this.jitter * (2 * this.random() - 1));
      this.schedule(entry, startedAt + interval - this.options.clock.now());
    });
  }
}

/** A peer is the same peer while its pod and address are: a new IP or port is a new peer. */
function identity(peer: Peer): string {
  return `${peer.uid}/${peer.ip}:${peer.port}`;
}
