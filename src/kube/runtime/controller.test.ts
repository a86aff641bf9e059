import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { setImmediate as nextTurn } from 'node:timers/promises';
import { pino } from 'pino';
import { Registry } from 'prom-client';
import { FakeClock } from '../clock.ts';
import { Controller, done, requeueAfter, TerminalError, type Outcome, type Reconciler } from './controller.ts';
import type { Logger } from '../logger-type.ts';
import { metricValue } from '../../../test/helpers/metrics.ts';

/** Event-loop turns to let workers make progress; the controller itself yields one turn per key. */
const SETTLE_TURNS = 20;

async function settle(): Promise<void> {
  for (let i = 0; i < SETTLE_TURNS; i++) await nextTurn();
}

async function until(condition: () => boolean, what: string): Promise<void> {
  for (let i = 0; i < SETTLE_TURNS * 5; i++) {
    if (condition()) return;
    await nextTurn();
  }
  assert.fail(`timed out waiting until ${what}`);
}

interface Deferred<T> {
  readonly promise: Promise<T>;
  resolve(value: T): void;
  reject(err: unknown): void;
}

function deferred<T>(): Deferred<T> {
  let resolve!: (value: T) => void;
  let reject!: (err: unknown) => void;
  const promise = new Promise<T>((res, rej) => {
    resolve = res;
    reject = rej;
  });
  return { promise, resolve, reject };
}

interface LogLine {
  readonly level: 'debug' | 'info' | 'warn' | 'error';
  readonly obj: Record<string, unknown>;
  readonly msg: string | undefined;
}

function recordingLogger(): Logger & { readonly lines: LogLine[] } {
  const lines: LogLine[] = [];
  const at = (level: LogLine['level']) => (obj: object, msg?: string) => void lines.push({ level, obj: obj as Record<string, unknown>, msg });
  return { lines, debug: at('debug'), info: at('info'), warn: at('warn'), error: at('error') };
}


/** Starts a controller named `widgets` on a fake clock; `stop()` aborts and waits for run to return. */
function start(reconcile: Reconciler<string>, options: { workers?: number; logger?: Logger } = {}) {
  const clock = new FakeClock();
  const registry = new Registry();
  const logger = options.logger ?? recordingLogger();
  const controller = new Controller({ name: 'widgets', reconcile, clock, registry, logger, workers: options.workers ?? 2 });
  const abort = new AbortController();
  const running = controller.run(abort.signal);
  const stop = async () => {
    abort.abort();
    await running;
  };
  return { clock, registry, logger, controller, abort, running, stop };
}

/** A reconciler that records each call and answers from `answer`. */
function scripted(answer: (call: number, key: string) => Promise<Outcome> | Outcome) {
  const calls: Array<{ readonly key: string }> = [];
  const reconcile: Reconciler<string> = async (key) => {
    calls.push({ key });
    return answer(calls.length, key);
  };
  return { calls, reconcile };
}

describe('Controller', () => {
  it('forgets the failure history of a key once it reconciles to done', async () => {
    const { calls, reconcile } = scripted((call) => {
      if (call === 1) throw new Error('conflict');
      return done;
    });
    const { clock, controller, registry, stop } = start(reconcile);
    controller.enqueue('ns/a');
    await until(() => calls.length === 1, 'the first reconcile failed');
    await settle();
    assert.equal(controller.queue.numRequeues('ns/a'), 1);
    clock.advance(5);
    await until(() => calls.length === 2, 'the retry ran');
    await settle();
    assert.equal(controller.queue.numRequeues('ns/a'), 0);
    assert.equal(await metricValue(registry, 'crowsnest_reconcile_total', { controller: 'widgets', result: 'success' }), 1);
    await stop();
  });

  it('reconciles a key again after the delay it asked for with requeueAfter', async () => {
    const { calls, reconcile } = scripted(() => requeueAfter(1_000));
    const { clock, controller, registry, stop } = start(reconcile);
    controller.enqueue('ns/a');
    await until(() => calls.length === 1, 'the first reconcile ran');
    clock.advance(999);
    await settle();
    assert.equal(calls.length, 1, 'not before the delay');
    clock.advance(1);
    await until(() => calls.length === 2, 'the requeued reconcile ran');
    assert.equal(controller.queue.numRequeues('ns/a'), 0, 'a requeue is not a failure');
    assert.equal(await metricValue(registry, 'crowsnest_reconcile_total', { controller: 'widgets', result: 'requeue' }), 2);
    await stop();
  });

  it('retries a failing key with growing per-key backoff and logs each failure', async () => {
    const { calls, reconcile } = scripted(() => {
      throw new Error('apiserver unavailable');
    });
    const logger = recordingLogger();
    const { clock, controller, registry, stop } = start(reconcile, { logger });
    controller.enqueue('ns/a');
    await until(() => calls.length === 1, 'the first reconcile ran');
    const expectedDelaysMs = [5, 10, 20, 40, 80];
    for (const [i, delayMs] of expectedDelaysMs.entries()) {
      clock.advance(delayMs - 1);
      await settle();
      assert.equal(calls.length, i + 1, `retry ${i + 1} must not run before ${delayMs} ms`);
      clock.advance(1);
      await until(() => calls.length === i + 2, `retry ${i + 1} ran after ${delayMs} ms`);
    }
    await settle();
    assert.equal(controller.queue.numRequeues('ns/a'), expectedDelaysMs.length + 1);
    const errors = logger.lines.filter((line) => line.level === 'error');
    assert.equal(errors.length, expectedDelaysMs.length + 1);
    assert.equal(errors[0]!.obj['key'], 'ns/a');
    assert.equal((errors[0]!.obj['err'] as Error).message, 'apiserver unavailable');
    assert.equal(errors.at(-1)!.obj['retries'], expectedDelaysMs.length + 1);
    assert.equal(await metricValue(registry, 'crowsnest_reconcile_total', { controller: 'widgets', result: 'error' }), 6);
    assert.equal(await metricValue(registry, 'crowsnest_reconcile_errors_total', { controller: 'widgets' }), 6);
    assert.equal(await metricValue(registry, 'workqueue_retries_total', { name: 'widgets' }), 6);
    await stop();
  });

  it('treats a reconciler that returns no Outcome as a failure and retries it', async () => {
    const { calls, reconcile } = scripted(() => undefined as unknown as Outcome);
    const { clock, controller, stop } = start(reconcile);
    controller.enqueue('ns/a');
    await until(() => calls.length === 1, 'the first reconcile ran');
    clock.advance(5);
    await until(() => calls.length === 2, 'the retry ran');
    await stop();
  });

  const terminalCases = [
    { name: 'a TerminalError', error: () => new TerminalError('spec.port is not a number') },
    { name: 'an error caused by a TerminalError', error: () => new Error('apply failed', { cause: new TerminalError('invalid spec') }) },
  ];
  for (const { name, error } of terminalCases) {
    it(`does not retry a key that failed with ${name}`, async () => {
      const { calls, reconcile } = scripted(() => {
        throw error();
      });
      const logger = recordingLogger();
      const { clock, controller, registry, stop } = start(reconcile, { logger });
      controller.enqueue('ns/a');
      await until(() => calls.length === 1, 'the reconcile ran');
      clock.advance(3_600_000);
      await settle();
      assert.equal(calls.length, 1);
      assert.equal(controller.queue.numRequeues('ns/a'), 0);
      assert.equal(logger.lines.filter((l) => l.level === 'error').length, 1);
      const result = (r: string) => metricValue(registry, 'crowsnest_reconcile_total', { controller: 'widgets', result: r });
      assert.equal(await result('terminal_error'), 1);
      assert.equal(await result('error'), 0);
      assert.equal(await metricValue(registry, 'crowsnest_reconcile_errors_total', { controller: 'widgets' }), 1);
      controller.enqueue('ns/a');
      await until(() => calls.length === 2, 'a new event reconciles the key again');
      await stop();
    });
  }

  it('never reconciles one key in two workers at once, but runs different keys in parallel', async () => {
    const active = new Set<string>();
    let overlaps = 0;
    let maxParallel = 0;
    const pending = new Map<string, Array<Deferred<Outcome>>>();
    const started: string[] = [];
    const reconcile: Reconciler<string> = async (key) => {
      if (active.has(key)) overlaps++;
      active.add(key);
      maxParallel = Math.max(maxParallel, active.size);
      started.push(key);
      const finish = deferred<Outcome>();
      pending.set(key, [...(pending.get(key) ?? []), finish]);
      try {
        return await finish.promise;
      } finally {
        active.delete(key);
      }
    };
    const finishOldest = (key: string) => pending.get(key)!.shift()!.resolve(done);
    const { controller, stop } = start(reconcile, { workers: 4 });

    controller.enqueue('ns/a');
    controller.enqueue('ns/b');
    await until(() => active.size === 2, 'both keys are in flight');
    // Events for ns/a keep arriving while it is reconciled: it must wait, however many workers are idle.
    controller.enqueue('ns/a');
    controller.enqueue('ns/a');
    controller.enqueue('ns/c');
    await until(() => active.size === 3, 'ns/c started on an idle worker');
    await settle();
    assert.deepEqual(started, ['ns/a', 'ns/b', 'ns/c']);

    finishOldest('ns/a');
    await until(() => started.length === 4, 'ns/a ran again after its first reconcile finished');
    assert.equal(started[3], 'ns/a');
    finishOldest('ns/a');
    finishOldest('ns/b');
    finishOldest('ns/c');
    await settle();
    assert.equal(started.length, 4, 'the burst of re-adds caused exactly one more reconcile');
    assert.equal(overlaps, 0);
    assert.equal(maxParallel, 3);
    await stop();
  });

  it('stops on abort only after in-flight reconciles return, and starts no queued key', async () => {
    const finish = deferred<Outcome>();
    const seen: Array<{ key: string; signal: AbortSignal }> = [];
    const reconcile: Reconciler<string> = (key, signal) => {
      seen.push({ key, signal });
      return finish.promise;
    };
    const { controller, abort, running } = start(reconcile, { workers: 1 });
    controller.enqueue('ns/a');
    await until(() => seen.length === 1, 'ns/a is in flight');
    controller.enqueue('ns/b');
    abort.abort();
    const stopped = Promise.race([running.then(() => 'stopped'), nextTurn().then(() => 'running')]);
    assert.equal(await stopped, 'running', 'run waits for ns/a');
    assert.equal(seen[0]!.signal.aborted, true, 'the reconciler sees the abort');
    finish.resolve(done);
    await running;
    assert.deepEqual(seen.map((s) => s.key), ['ns/a'], 'ns/b was queued but never started');
    assert.equal(controller.queue.shuttingDown, true);
  });

  it('returns at once when started with an aborted signal', async () => {
    const { calls, reconcile } = scripted(() => done);
    const controller = new Controller({ name: 'widgets', reconcile, clock: new FakeClock() });
    controller.enqueue('ns/a');
    await controller.run(AbortSignal.abort());
    assert.equal(calls.length, 0);
  });

  it('refuses to run twice', async () => {
    const { reconcile } = scripted(() => done);
    const { controller, stop } = start(reconcile);
    await assert.rejects(controller.run(new AbortController().signal), /already started/);
    await stop();
    await assert.rejects(controller.run(new AbortController().signal), /already started/);
  });

  it('exports reconcile counts and durations from the injected clock, zeroed before the first reconcile', async () => {
    const finish = deferred<Outcome>();
    const reconcile: Reconciler<string> = () => finish.promise;
    const { clock, controller, registry, stop } = start(reconcile);
    const labels = { controller: 'widgets' };
    for (const result of ['success', 'requeue', 'error', 'terminal_error']) {
      assert.equal(await metricValue(registry, 'crowsnest_reconcile_total', { ...labels, result }), 0, result);
    }
    assert.equal(await metricValue(registry, 'crowsnest_reconcile_duration_seconds_count', labels), 0);

    controller.enqueue('ns/a');
    await settle();
    clock.advance(250);
    finish.resolve(done);
    await until(() => controller.queue.len() === 0, 'the reconcile finished');
    await settle();
    assert.equal(await metricValue(registry, 'crowsnest_reconcile_duration_seconds_sum', labels), 0.25);
    assert.equal(await metricValue(registry, 'crowsnest_reconcile_duration_seconds_count', labels), 1);
    assert.equal(await metricValue(registry, 'crowsnest_reconcile_duration_seconds_bucket', { ...labels, le: '0.25' }), 1);
    assert.equal(await metricValue(registry, 'crowsnest_reconcile_duration_seconds_bucket', { ...labels, le: '0.2' }), 0);
    assert.equal(await metricValue(registry, 'workqueue_work_duration_seconds_sum', { name: 'widgets' }), 0.25);
    assert.match(await registry.getSingleMetricAsString('crowsnest_reconcile_total'), /crowsnest_reconcile_total\{controller="widgets",result="success"\} 1/);
    await stop();
  });

  it('lets several controllers share one registry', async () => {
    const registry = new Registry();
    const make = (name: string) => new Controller({ name, reconcile: async () => done, registry, clock: new FakeClock() });
    const [first, second] = [make('widgets'), make('gadgets')];
    const abort = new AbortController();
    const runs = [first.run(abort.signal), second.run(abort.signal)];
    first.enqueue('ns/a');
    second.enqueue('ns/a');
    second.enqueue('ns/b');
    await until(() => first.queue.len() + second.queue.len() === 0, 'both queues drained');
    await settle();
    abort.abort();
    await Promise.all(runs);
    assert.equal(await metricValue(registry, 'crowsnest_reconcile_total', { controller: 'widgets', result: 'success' }), 1);
    assert.equal(await metricValue(registry, 'crowsnest_reconcile_total', { controller: 'gadgets', result: 'success' }), 2);
  });

  it('logs through a pino logger with the controller name bound', async () => {
    const written: string[] = [];
    const logger = pino({ level: 'debug' }, { write: (line: string) => void written.push(line) });
    const { calls, reconcile } = scripted(() => {
      throw new Error('boom');
    });
    const { controller, stop } = start(reconcile, { logger });
    controller.enqueue('ns/a');
    await until(() => calls.length === 1, 'the reconcile ran');
    await settle();
    await stop();
    const failure = written.map((line) => JSON.parse(line)).find((line) => line.msg === 'reconcile failed; retrying with backoff');
    assert.ok(failure, `no failure line in ${written.join('')}`);
    assert.equal(failure.controller, 'widgets');
    assert.equal(failure.key, 'ns/a');
    assert.equal(failure.err.message, 'boom');
  });

  const invalidDelays = [-1, Number.NaN, Number.POSITIVE_INFINITY];
  for (const delayMs of invalidDelays) {
    it(`requeueAfter rejects a delay of ${delayMs} ms`, () => {
      assert.throws(() => requeueAfter(delayMs), RangeError);
    });
  }

  const invalidWorkers = [0, -1, 1.5];
  for (const workers of invalidWorkers) {
    it(`rejects ${workers} workers`, () => {
      assert.throws(() => new Controller({ name: 'widgets', reconcile: async () => done, workers }), RangeError);
    });
  }
});
