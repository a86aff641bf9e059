/**
 * The node log agent's loop: read what the watched containers logged since the last accepted
 * batch, count it against each watch's pattern, and hand the counts to the operator as one batch;
 * move the cursors only once the operator has accepted it.
 *
 *   ┌──────────┐ read (≤ budget), count ┌─────────┐ send ┌──────────┐ accepted ┌──────────┐
 *   │ idle     │ ─────────────────────▶ │ pending │ ───▶ │ answered │ ───────▶ │ committed│
 *   └──────────┘                        └─────────┘      └──────────┘          └──────────┘
 *                                         ▲  │ failure, 429/503, not accepted: the same batch
 *                                         └──┘ again after a backoff; nothing more is read
 *
 * Backpressure: while a batch is pending the agent reads nothing further, so its memory is one
 * batch's counts whatever the operator does; the unread log waits in the node's files. A batch is
 * persisted as pending before it is sent (see state.ts), which makes counting exactly-once across
 * agent restarts: a resent batch carries its id, and the operator counts an id once.
 *
 * A watch counts from the moment the agent learns of it: the containers it names start at the end
 * of what they had logged then (no history is ever sent); a container that appears later (a new
 * container of the pod) is read from its beginning, and so is every later file of a tailed
 * container (rotations, restarts).
 */
import { readdir } from 'node:fs/promises';
import { join } from 'node:path';
import { sleep, type Clock } from '../../kube/clock.ts';
import type { Logger } from '../../kube/logger-type.ts';
import type { LogAnswer, LogBatch, LogCount, LogWatch } from '../contract.ts';
import { compilePattern, PatternError } from './pattern.ts';
import { emptyState, type AgentState, type StateStore } from './state.ts';
import { cursorAtEnd, readContainer, type Cursor } from './tail.ts';

/** What a send came to. */
export type SendOutcome =
  | { readonly kind: 'answer'; readonly answer: LogAnswer }
  | { readonly kind: 'retry'; readonly reason: string; readonly detail: string; readonly afterMs?: number };

/** Where batches go (the operator's guard endpoint; a test receiver in tests). */
export interface LogSink {
  /** Never rejects: a failure is a `retry` outcome. */
  send(batch: LogBatch): Promise<SendOutcome>;
}

export interface LogsAgentOptions {
  readonly node: string;
  /** The kubelet's pod log directory as mounted (`/var/log/pods`). */
  readonly podLogsDir: string;
  readonly store: StateStore;
  readonly sink: LogSink;
  readonly clock: Clock;
  readonly logger: Logger;
  /** Log bytes read per batch, over all containers. Default 8 MiB. */
  readonly batchBytes?: number;
  /** Bytes of a line kept for matching (the rest still counts as part of the line). Default 16 KiB. */
  readonly maxLineBytes?: number;
  /** Matching lines kept per count as evidence. Default 3. */
  readonly samples?: number;
  /** Wait after a failed send: doubling from `initialMs` to `maxMs`. Default 1 s to 30 s. */
  readonly backoff?: { readonly initialMs: number; readonly maxMs: number };
  /** Until the operator says otherwise. Default 5 s. */
  readonly sendAfterMs?: number;
}

export interface AgentCounters {
  batchesAccepted: number;
  sendFailures: number;
  linesRead: number;
  bytesRead: number;
  malformedLines: number;
  lostFiles: number;
}

const SAMPLE_BYTES = 512;

export class LogsAgent {
  private readonly options: LogsAgentOptions;
  private state: AgentState;
  private readonly patterns = new Map<string, RegExp | PatternError>();
  private failures = 0;
  private sendAfterMs: number;
  readonly counters: AgentCounters = { batchesAccepted: 0, sendFailures: 0, linesRead: 0, bytesRead: 0, malformedLines: 0, lostFiles: 0 };

  constructor(options: LogsAgentOptions) {
    this.options = options;
    this.state = emptyState(options.node, freshBatchId(options.clock));
    this.sendAfterMs = options.sendAfterMs ?? 5_000;
  }

  /** Loads the persisted state; a fresh state's batch ids start at the clock's milliseconds (see {@link freshBatchId}). */
  async load(): Promise<void> {
    this.state = (await this.options.store.load(this.options.node)) ?? emptyState(this.options.node, freshBatchId(this.options.clock));
    if (this.state.pending) this.options.logger.info({ batchId: this.state.pending.batch.batchId }, 'resending the batch pending at the last stop');
  }

  /** The state as it stands (for tests and the log API). */
  get current(): AgentState {
    return this.state;
  }

  /**
   * Runs cycles until `signal` aborts; resolves after the cycle in progress. A cycle that fails
   * (a log directory it may not read, a state file it cannot write) is logged and tried again
   * after the backoff: nothing moved, so nothing is lost.
   */
  async run(signal: AbortSignal): Promise<void> {
    let failures = 0;
    while (!signal.aborted) {
      let waitMs: number;
      try {
        waitMs = await this.cycle();
        failures = 0;
      } catch (err) {
        failures++;
        const backoff = this.options.backoff ?? { initialMs: 1_000, maxMs: 30_000 };
        waitMs = Math.min(backoff.maxMs, backoff.initialMs * 2 ** (failures - 1));
        this.options.logger.error({ err: (err as Error).message, failures }, 'a cycle failed; trying again');
      }
      await sleep(this.options.clock, waitMs, signal);
    }
  }

  /**
   * One cycle: a new batch (when none is pending) and one send of the pending batch.
   *
   * @returns milliseconds until the next cycle.
   */
  async cycle(): Promise<number> {
    let more = false;
    if (!this.state.pending) {
      const read = await this.read();
      more = read.more;
      const batch: LogBatch = { node: this.options.node, batchId: this.state.nextBatchId, counts: read.counts };
      const next: AgentState = { ...this.state, nextBatchId: this.state.nextBatchId + 1, pending: { batch, cursors: read.cursors } };
      // Only a batch on disk may be sent: one sent but never saved could be re-read after a
      // restart under the same id, with more lines in it, and the operator would drop the whole.
      await this.options.store.save(next);
      this.state = next;
    }
    const pending = this.state.pending!;
    const outcome = await this.options.sink.send(pending.batch);
    if (outcome.kind === 'answer' && outcome.answer.accepted) {
      this.failures = 0;
      this.counters.batchesAccepted++;
      if (outcome.answer.sendAfterMs > 0) this.sendAfterMs = outcome.answer.sendAfterMs;
      const { pending: _sent, ...rest } = this.state;
      this.state = await this.applyWatches({ ...rest, cursors: pending.cursors }, outcome.answer.watches);
      await this.options.store.save(this.state);
      // A batch that stopped at its budget is followed at once by the next.
      return more ? 0 : this.sendAfterMs;
    }
    this.failures++;
    this.counters.sendFailures++;
    const backoff = this.options.backoff ?? { initialMs: 1_000, maxMs: 30_000 };
    const wait = Math.min(backoff.maxMs, backoff.initialMs * 2 ** (this.failures - 1));
    if (outcome.kind === 'answer') {
      this.options.logger.warn({ batchId: pending.batch.batchId }, 'the operator did not keep the batch; sending it again');
      return Math.max(wait, outcome.answer.sendAfterMs);
    }
    if (this.failures === 1 || this.failures % 10 === 0) this.options.logger.warn({ batchId: pending.batch.batchId, reason: outcome.reason, failures: this.failures }, outcome.detail);
    return Math.max(wait, outcome.afterMs ?? 0);
  }

  /** Reads every tailed container from its cursor, counting lines against the watches. */
  private async read(): Promise<{ counts: LogCount[]; cursors: Record<string, Cursor>; more: boolean }> {
    const options = this.options;
    const maxLineBytes = options.maxLineBytes ?? 16 * 1024;
    const samples = options.samples ?? 3;
    const containers = await this.tailedContainers();
    const budget = Math.max(64 * 1024, Math.floor((options.batchBytes ?? 8 * 1024 * 1024) / Math.max(1, containers.length)));
    const cursors: Record<string, Cursor> = { ...this.state.cursors };
    const counts: LogCount[] = [];
    let more = false;
    for (const { key, dir, watches } of containers) {
      const tallies = watches.map(({ watch, pattern, container }) => ({ watch, pattern, count: { namespace: watch.namespace, pod: watch.pod, podUid: watch.podUid, container, policy: watch.policy, lines: 0, matched: 0, samples: [] as string[] } }));
      let lines = 0;
      const result = await readContainer(dir, cursors[key] ?? { offset: 0 }, { budgetBytes: budget, maxLineBytes, nowMs: options.clock.now() }, (line) => {
        lines++;
        const text = line.toString('utf8');
        for (const tally of tallies) {
          if (!tally.pattern.test(text)) continue;
          tally.count.matched++;
          if (tally.count.samples.length < samples) tally.count.samples.push(cutUtf8(line, SAMPLE_BYTES));
        }
      });
      cursors[key] = result.cursor;
      more ||= result.more;
      this.counters.linesRead += lines;
      this.counters.bytesRead += result.bytes;
      this.counters.malformedLines += result.malformed;
      if (result.lostFiles > 0) {
        this.counters.lostFiles += result.lostFiles;
        options.logger.warn({ container: key, dir }, 'a log file was deleted before it was read to its end (the agent fell behind the kubelet\'s rotation); its unread lines are not counted');
      }
      if (lines > 0) for (const tally of tallies) counts.push({ ...tally.count, lines });
    }
    return { counts, cursors, more };
  }

  /** The containers the watches name, with the watches that count each. */
  private async tailedContainers(): Promise<Array<{ key: string; dir: string; watches: Array<{ watch: LogWatch; pattern: RegExp; container: string }> }>> {
    const byKey = new Map<string, { key: string; dir: string; watches: Array<{ watch: LogWatch; pattern: RegExp; container: string }> }>();
    for (const watch of this.state.watches) {
      const pattern = this.pattern(watch);
      if (!pattern) continue;
      for (const container of await this.containersOf(watch)) {
        const key = `${watch.podUid}/${container}`;
        let entry = byKey.get(key);
        if (!entry) {
          entry = { key, dir: join(this.podDir(watch), container), watches: [] };
          byKey.set(key, entry);
        }
        entry.watches.push({ watch, pattern, container });
      }
    }
    return [...byKey.values()];
  }

  private podDir(watch: LogWatch): string {
    return join(this.options.podLogsDir, `${watch.namespace}_${watch.pod}_${watch.podUid}`);
  }

  private async containersOf(watch: LogWatch): Promise<readonly string[]> {
    if (watch.containers.length > 0) return watch.containers;
    try {
      return (await readdir(this.podDir(watch), { withFileTypes: true })).filter((entry) => entry.isDirectory()).map((entry) => entry.name).sort();
    } catch {
      return []; // the pod has no log directory (yet, or any more)
    }
  }

  private pattern(watch: LogWatch): RegExp | undefined {
    let compiled = this.patterns.get(watch.pattern);
    if (!compiled) {
      try {
        compiled = compilePattern(watch.pattern);
      } catch (err) {
        if (!(err instanceof PatternError)) throw err;
        compiled = err;
        this.options.logger.warn({ policy: `${watch.namespace}/${watch.policy}` }, `not counting for this policy: ${err.message}`);
      }
      this.patterns.set(watch.pattern, compiled);
    }
    return compiled instanceof RegExp ? compiled : undefined;
  }

  /**
   * Takes up the operator's watches: containers newly watched start at the end of what they hold
   * now; cursors of pods no longer watched are dropped.
   */
  private async applyWatches(state: AgentState, watches: readonly LogWatch[]): Promise<AgentState> {
    const cursors: Record<string, Cursor> = {};
    const next: AgentState = { ...state, watches: [...watches] };
    const previous = this.state;
    this.state = next;
    try {
      for (const { key, dir } of await this.tailedContainers()) {
        cursors[key] = state.cursors[key] ?? (await cursorAtEnd(dir, this.options.clock.now()));
      }
    } finally {
      this.state = previous;
    }
    const dropped = Object.keys(state.cursors).filter((key) => !(key in cursors));
    if (dropped.length > 0 || watches.length !== state.watches.length) this.options.logger.info({ watches: watches.length, containers: Object.keys(cursors).length, dropped: dropped.length }, 'watches updated');
    for (const watch of watches) this.pattern(watch);
    for (const key of [...this.patterns.keys()]) if (!watches.some((w) => w.pattern === key)) this.patterns.delete(key);
    return { ...next, cursors };
  }
}

/**
 * The first batch id of a fresh state: the clock's milliseconds. Ids then increase by one per
 * batch; an agent whose state directory was wiped starts above every id it sent before (the
 * operator ignores an id it has seen), unless the node's clock went back.
 */
export function freshBatchId(clock: Clock): number {
  return Math.floor(clock.now());
}

/** At most `maxBytes` of `line` as text, cut at a character boundary. */
export function cutUtf8(line: Buffer, maxBytes: number): string {
  if (line.length <= maxBytes) return line.toString('utf8');
  let end = maxBytes;
  while (end > 0 && (line[end]! & 0xc0) === 0x80) end--;
  return line.toString('utf8', 0, end);
}
