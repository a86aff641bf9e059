import assert from 'node:assert/strict';
import { readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { LogReceiver } from '../../../test/helpers/guard-log-receiver.ts';
import { useScratchDir } from '../../../test/helpers/scratch.ts';
import { FakeClock } from '../../kube/clock.ts';
import { silentLogger } from '../../kube/logger-type.ts';
import type { LogBatch, LogWatch } from '../contract.ts';
import { LogsAgent, type LogSink, type SendOutcome } from './agent.ts';
import { FakeContainerLog } from './fake-pod-logs.ts';
import { type AgentState, StateStore } from './state.ts';

const scratch = useScratchDir('guard-agent-');

type Step = 'deliver' | 'lose-request' | 'lose-answer' | 'throttled';

/** The network between agent and receiver, failing as scripted (then delivering). */
class ScriptedSink implements LogSink {
  readonly script: Step[] = [];
  readonly sent: LogBatch[] = [];
  readonly receiver: LogReceiver;
  constructor(receiver: LogReceiver) {
    this.receiver = receiver;
  }

  async send(batch: LogBatch): Promise<SendOutcome> {
    this.sent.push(JSON.parse(JSON.stringify(batch)) as LogBatch);
    const step = this.script.shift() ?? 'deliver';
    if (step === 'lose-request') return { kind: 'retry', reason: 'unavailable', detail: 'connection reset' };
    if (step === 'throttled') return { kind: 'retry', reason: 'throttled', detail: '429', afterMs: 2_000 };
    const answer = this.receiver.accept(JSON.parse(JSON.stringify(batch)) as LogBatch);
    if (step === 'lose-answer') return { kind: 'retry', reason: 'unavailable', detail: 'connection reset after the request' };
    return { kind: 'answer', answer };
  }
}

const watch = (overrides: Partial<LogWatch> = {}): LogWatch => ({ namespace: 'shop', pod: 'web-0', podUid: 'uid-0', containers: [], policy: 'errors', pattern: 'ERROR', ...overrides });

async function setup(options: { batchBytes?: number } = {}) {
  const root = await scratch.fresh();
  const stateDir = await scratch.fresh();
  const log = await new FakeContainerLog(root, 'shop', 'web-0', 'uid-0', 'app').create();
  const receiver = new LogReceiver();
  const sink = new ScriptedSink(receiver);
  const clock = new FakeClock();
  /** A new agent process on the same node: same state directory, same files. */
  const start = async (): Promise<LogsAgent> => {
    const agent = new LogsAgent({ node: 'node-a', podLogsDir: root, store: new StateStore(stateDir), sink, clock, logger: silentLogger, batchBytes: options.batchBytes ?? 1 << 20 });
    await agent.load();
    return agent;
  };
  return { root, stateDir, log, receiver, sink, clock, start };
}

describe('the log agent', () => {
  it('counts a new watch from the moment it learns of it: lines and matches, a few samples', async () => {
    const { log, receiver, start } = await setup();
    await log.lines(50, { errorEvery: 10, prefix: 'history' });
    receiver.watches = [watch()];
    const agent = await start();
    await agent.cycle(); // learns the watch
    await log.lines(100, { errorEvery: 10 });
    await agent.cycle();
    assert.deepEqual(receiver.total(), { lines: 100, matched: 10 });
    const count = receiver.kept.at(-1)!.counts[0]!;
    assert.deepEqual({ ...count, samples: count.samples.length }, { namespace: 'shop', pod: 'web-0', podUid: 'uid-0', container: 'app', policy: 'errors', lines: 100, matched: 10, samples: 3 });
    assert.equal(count.samples[0], 'line 0 ERROR');
  });

  it('resends the pending batch after a restart when the answer was lost: same id, counted once', async () => {
    const { log, receiver, sink, start } = await setup();
    receiver.watches = [watch()];
    await (await start()).cycle();
    await log.lines(30, { errorEvery: 3 });
    sink.script.push('lose-answer');
    const first = await start();
    await first.cycle();
    const lost = sink.sent.at(-1)!;
    // The agent is killed here; its successor finds the batch pending.
    const second = await start();
    assert.equal(second.current.pending?.batch.batchId, lost.batchId);
    await second.cycle();
    assert.deepEqual(sink.sent.at(-1), lost, 'the very same batch');
    assert.equal(receiver.duplicates, 1);
    assert.deepEqual(receiver.total(), { lines: 30, matched: 10 });
    await second.cycle();
    assert.deepEqual(receiver.total(), { lines: 30, matched: 10 });
  });

  it('re-reads the same lines under the same id when it stopped before the batch was persisted', async () => {
    const { log, receiver, sink, stateDir, start } = await setup();
    receiver.watches = [watch()];
    await (await start()).cycle();
    const before = await readFile(`${stateDir}/logs-agent-state.json`, 'utf8');
    await log.lines(20, { errorEvery: 2 });
    const crashed = await start();
    sink.script.push('lose-request');
    await crashed.cycle();
    // Put the state back as it was before that cycle: as if the agent died before saving it.
    await writeFile(`${stateDir}/logs-agent-state.json`, before);
    const successor = await start();
    assert.equal(successor.current.nextBatchId, (JSON.parse(before) as AgentState).nextBatchId);
    await successor.cycle();
    assert.deepEqual(receiver.total(), { lines: 20, matched: 10 });
  });

  it('never sends a batch it could not save: a failed save, a lost answer and a restart lose no line', async () => {
    const { log, receiver, sink, stateDir, clock } = await setup();
    receiver.watches = [watch()];
    const real = new StateStore(stateDir);
    let failSaves = 0;
    const store = Object.assign(Object.create(real) as StateStore, {
      save: async (state: AgentState) => {
        if (failSaves > 0) {
          failSaves--;
          throw new Error('EIO: i/o error');
        }
        await real.save(state);
      },
    });
    const start = async (): Promise<LogsAgent> => {
      const agent = new LogsAgent({ node: 'node-a', podLogsDir: join(log.dir, '..', '..'), store, sink, clock, logger: silentLogger });
      await agent.load();
      return agent;
    };
    const agent = await start();
    await agent.cycle();
    await log.lines(10);
    failSaves = 1;
    await assert.rejects(agent.cycle(), /EIO/);
    sink.script.push('lose-answer');
    await agent.cycle();
    const successor = await start(); // the agent dies here
    await log.lines(5, { from: 10 });
    for (let i = 0; i < 3; i++) await successor.cycle();
    assert.deepEqual(receiver.total(), { lines: 15, matched: 0 });
  });

  it('holds back while the operator refuses (429/503): the same batch again, nothing more read', async () => {
    const { log, receiver, sink, start } = await setup();
    receiver.watches = [watch()];
    const agent = await start();
    await agent.cycle();
    await log.lines(10);
    sink.script.push('throttled', 'throttled', 'lose-request');
    const waits = [await agent.cycle(), await agent.cycle(), await agent.cycle()];
    assert.ok(waits.every((ms) => ms >= 2_000 || ms >= 1_000), `waited ${waits.join(', ')} ms`);
    await log.lines(10, { from: 10 });
    const bytesBefore = agent.counters.bytesRead;
    const pendingId = agent.current.pending!.batch.batchId;
    assert.deepEqual(sink.sent.slice(-3).map((b) => b.batchId), [pendingId, pendingId, pendingId]);
    await agent.cycle(); // delivered
    assert.equal(agent.counters.bytesRead, bytesBefore, 'nothing read while the batch was pending');
    assert.deepEqual(receiver.total(), { lines: 10, matched: 0 });
    await agent.cycle();
    assert.deepEqual(receiver.total(), { lines: 20, matched: 0 });
    assert.equal(sink.sent.at(-1)!.batchId, pendingId + 1);
  });

  it('neither loses nor duplicates a line through rotations, compression, container restarts, agent restarts and lost answers', async () => {
    const { log, receiver, sink, start } = await setup({ batchBytes: 2_000 });
    receiver.watches = [watch(), watch({ policy: 'fives', pattern: '5$' })];
    let agent = await start();
    await agent.cycle();
    let written = 0;
    let errors = 0;
    let fives = 0;
    // A fixed pseudo-random schedule, so a failure reproduces.
    let seed = 7;
    const random = (): number => {
      seed = (seed * 1_103_515_245 + 12_345) % 2 ** 31;
      return seed / 2 ** 31;
    };
    const rotated: string[] = [];
    for (let round = 0; round < 60; round++) {
      const n = 1 + Math.floor(random() * 40);
      for (let i = written; i < written + n; i++) {
        if (i % 7 === 0) errors++;
        if (i % 10 === 5 && i % 7 !== 0) fives++; // an error line ends in ' ERROR'
      }
      await log.lines(n, { from: written, errorEvery: 7 });
      written += n;
      const event = random();
      if (event < 0.15) rotated.push(await log.rotate());
      else if (event < 0.2 && rotated.length > 1) await log.compress(rotated.shift()!);
      else if (event < 0.25) await log.restart();
      const step = random();
      if (step < 0.15) sink.script.push('lose-answer');
      else if (step < 0.3) sink.script.push('lose-request');
      else if (step < 0.35) sink.script.push('throttled');
      await agent.cycle();
      if (random() < 0.35) agent = await start();
    }
    for (let i = 0; i < 200 && (agent.current.pending || receiver.total({ policy: 'errors' }).lines < written); i++) await agent.cycle();
    assert.deepEqual(receiver.total({ policy: 'errors' }), { lines: written, matched: errors });
    assert.deepEqual(receiver.total({ policy: 'fives' }), { lines: written, matched: fives });
    assert.ok(receiver.duplicates > 0, 'the schedule resent some batches');
    assert.equal(agent.counters.lostFiles, 0);
  });

  it('stops tailing a pod whose watch is gone, and skips a pattern it will not run', async () => {
    const { log, receiver, start } = await setup();
    receiver.watches = [watch(), watch({ policy: 'bad', pattern: '(a)\\1' })];
    const agent = await start();
    await agent.cycle();
    assert.deepEqual(Object.keys(agent.current.cursors), ['uid-0/app']);
    await log.lines(5);
    await agent.cycle();
    assert.deepEqual(receiver.kept.at(-1)!.counts.map((c) => c.policy), ['errors']);
    receiver.watches = [];
    await agent.cycle();
    assert.deepEqual(agent.current.cursors, {});
  });

  it('starts batch ids of a fresh state at the clock, above any id an earlier state sent', async () => {
    const { start, clock } = await setup();
    assert.equal((await start()).current.nextBatchId, clock.now());
  });
});

describe('the log agent\'s loop', () => {
  it('keeps going after a cycle fails (a state file it cannot write), losing nothing', async () => {
    const root = await scratch.fresh();
    const log = await new FakeContainerLog(root, 'shop', 'web-0', 'uid-0', 'app').create();
    const receiver = new LogReceiver();
    receiver.watches = [watch()];
    const clock = new FakeClock();
    const real = new StateStore(await scratch.fresh());
    let failSaves = 0;
    const store = Object.assign(Object.create(real) as StateStore, {
      save: async (state: AgentState) => {
        if (failSaves > 0) {
          failSaves--;
          throw new Error('ENOSPC: no space left on device');
        }
        await real.save(state);
      },
    });
    const errors: string[] = [];
    const logger = { ...silentLogger, error: (obj: object) => errors.push(JSON.stringify(obj)) };
    const agent = new LogsAgent({ node: 'node-a', podLogsDir: root, store, sink: new ScriptedSink(receiver), clock, logger });
    await agent.load();
    const stop = new AbortController();
    const running = agent.run(stop.signal);
    // The agent's file I/O takes real time; the fake clock only stands in for its waits. The
    // bound is generous real time, not a count of turns: on a loaded machine 500 turns of 5 ms
    // ended before the agent had read the lines.
    const until = async (done: () => boolean): Promise<void> => {
      const giveUpAt = Date.now() + 60_000;
      while (!done() && Date.now() < giveUpAt) {
        clock.advance(30_000);
        await new Promise((resolve) => setTimeout(resolve, 5));
      }
    };
    // A watch counts from where the file stood when the agent first listed it: lines written
    // before that are not the watch's (no history is sent). Wait until the agent holds a cursor.
    await until(() => Object.keys(agent.current.cursors).length === 1);
    await log.lines(10, { errorEvery: 2 });
    failSaves = 2;
    await until(() => failSaves === 0 && receiver.total().lines >= 10);
    stop.abort();
    await running;
    assert.ok(errors.some((e) => /ENOSPC/.test(e)), 'the failure was logged');
    assert.deepEqual(receiver.total(), { lines: 10, matched: 5 });
  });
});
