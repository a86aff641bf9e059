/**
 * The agent's persisted state, one JSON file in its state directory (a hostPath, so it outlives
 * the agent's pod): the cursor of every container it tails, the watches it was last given, the
 * next batch id, and the batch in flight with the cursors it reaches.
 *
 * Exactly-once counting rests on the order of writes:
 * 1. before a batch is sent, it is written as `pending` (with the cursors after it), while
 *    `cursors` stay where they were;
 * 2. once the operator answers `accepted`, `cursors` become the pending ones and `pending` goes.
 * A restart between 1 and 2 resends the very same batch (same id, same counts), which the operator
 * counts once; a restart before 1 re-reads the same lines under the same id, never sent before.
 *
 * Writes are atomic (a temporary file, fsync, rename, fsync of the directory): a crash leaves the
 * old state or the new one, never half of one.
 */
import { mkdir, open, readFile, rename } from 'node:fs/promises';
import { join } from 'node:path';
import type { LogBatch, LogWatch } from '../contract.ts';
import type { Cursor } from './tail.ts';

export const STATE_FILE = 'logs-agent-state.json';
const STATE_VERSION = 1;

export interface AgentState {
  readonly version: typeof STATE_VERSION;
  readonly node: string;
  /** The id the next new batch gets. */
  readonly nextBatchId: number;
  /** Per container, keyed `<podUid>/<container>`: where reading stands, as the operator accepted it. */
  readonly cursors: Readonly<Record<string, Cursor>>;
  readonly watches: readonly LogWatch[];
  readonly pending?: PendingBatch;
}

export interface PendingBatch {
  readonly batch: LogBatch;
  /** The cursors once the batch is accepted. */
  readonly cursors: Readonly<Record<string, Cursor>>;
}

export function emptyState(node: string, firstBatchId: number): AgentState {
  return { version: STATE_VERSION, node, nextBatchId: firstBatchId, cursors: {}, watches: [] };
}

/** A state file that cannot be read back; the message says which and why. */
export class StateError extends Error {
  override readonly name = 'StateError';
}

export class StateStore {
  readonly path: string;
  private readonly dir: string;

  constructor(dir: string) {
    this.dir = dir;
    this.path = join(dir, STATE_FILE);
  }

  /**
   * The persisted state, or undefined when there is none. A state written on another node (the
   * directory was moved or shared) is refused: its cursors name another node's files.
   */
  async load(node: string): Promise<AgentState | undefined> {
    let text: string;
    try {
      text = await readFile(this.path, 'utf8');
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
      throw err;
    }
    let state: AgentState;
    try {
      state = JSON.parse(text) as AgentState;
    } catch (err) {
      throw new StateError(`${this.path} is not JSON (${(err as Error).message}); move it away to start over, which re-counts nothing but forgets where reading stood`);
    }
    if (state.version !== STATE_VERSION || typeof state.nextBatchId !== 'number' || typeof state.cursors !== 'object' || !Array.isArray(state.watches)) {
      throw new StateError(`${this.path} is not a state this agent wrote (version ${String(state.version)})`);
    }
    if (state.node !== node) throw new StateError(`${this.path} was written on node ${state.node}, not ${node}: its cursors name that node's files`);
    return state;
  }

  async save(state: AgentState): Promise<void> {
    await mkdir(this.dir, { recursive: true });
    const temporary = `${this.path}.tmp`;
    const handle = await open(temporary, 'w', 0o600);
    try {
      await handle.writeFile(JSON.stringify(state));
      await handle.sync();
    } finally {
      await handle.close();
    }
    await rename(temporary, this.path);
    const directory = await open(this.dir, 'r');
    try {
      await directory.sync();
    } finally {
      await directory.close();
    }
  }
}
