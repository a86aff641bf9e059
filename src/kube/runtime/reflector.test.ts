import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { setImmediate as nextTurn } from 'node:timers/promises';
import { Store } from './cache.ts';
import { KubeApiError } from '../client/client.ts';
import { unreachableClient } from '../client/unreachable-client.ts';
import { FakeClock } from '../clock.ts';
import { Informer } from './informer.ts';
import { ExponentialBackoff } from './ratelimiter.ts';
import { Resources } from '../objects/resources.ts';
import {
  type Backoff,
  type ListerWatcher,
  type ListPage,
  Reflector,
  type ReflectorOptions,
  type ReflectorState,
  type WatchEvent,
} from './reflector.ts';
import { type KubeObject, objectKey } from '../objects/resources.ts';

type ListOptions = Parameters<ListerWatcher<KubeObject>['list']>[0];
type WatchOptions = Parameters<ListerWatcher<KubeObject>['watch']>[0];

/** First delay of the test backoff; it doubles on every call (no jitter) up to MAX_BACKOFF_MS. */
const INITIAL_BACKOFF_MS = 1_000;
const MAX_BACKOFF_MS = 30_000;
/** The reflector's documented defaults, restated so a silent change of them fails a test. */
const DEFAULT_PAGE_SIZE = 500;
const DEFAULT_MIN_WATCH_TIMEOUT_SECONDS = 300;
const DEFAULT_WATCH_IDLE_TIMEOUT_MS = 180_000;
const DEFAULT_BACKOFF_RESET_AFTER_MS = 120_000;
/** Long enough that no reasonable "short watch" rule applies to a watch the test keeps open this long. */
const HEALTHY_WATCH_MS = 5_000;

const PENDING = Symbol('pending');

/**
 * Lets the reflector's loop run until it waits for something the test controls (a list answer, a
 * live watch, a fake timer). Everything it does in between is promise continuations, which all run
 * before the next event-loop turn.
 */
async function flush(): Promise<void> {
  await nextTurn();
}

/** The promise's value if it has settled once pending continuations ran, else PENDING. */
async function peek<T>(promise: Promise<T>): Promise<T | typeof PENDING> {
  return Promise.race([promise, nextTurn<typeof PENDING>(PENDING)]);
}

function untilAborted(signal: AbortSignal): Promise<never> {
  return new Promise((_, reject) => {
    if (signal.aborted) reject(signal.reason);
    signal.addEventListener('abort', () => reject(signal.reason), { once: true });
  });
}

/** A watch stream the test drives: it emits events and then ends or fails it. */
interface LiveWatch {
  readonly options: Omit<WatchOptions, 'signal'>;
  emit(event: WatchEvent<KubeObject>): void;
  /** The server ends the stream normally (timeout, idle watchdog). */
  end(): void;
  /** The connection fails, or the server answers the watch request with an error. */
  fail(err: unknown): void;
}

class FakeListerWatcher implements ListerWatcher<KubeObject> {
  /** Answers to list() calls in order: a page, or an error to throw. With none left, list() waits until aborted. */
  readonly listAnswers: Array<ListPage<KubeObject> | Error> = [];
  readonly listCalls: Array<{ limit: number; continueToken: string | undefined; resourceVersion?: string }> = [];
  /** Every watch() call, oldest first; each stays open until the test ends or fails it, or the signal aborts. */
  readonly watches: LiveWatch[] = [];
  /** What an open watch does when the signal aborts: reject (as fetch does) or end quietly. */
  watchOnAbort: 'reject' | 'resolve' = 'reject';

  async list(options: ListOptions): Promise<ListPage<KubeObject>> {
    this.listCalls.push({ limit: options.limit, continueToken: options.continueToken, ...(options.resourceVersion ? { resourceVersion: options.resourceVersion } : {}) });
    const answer = this.listAnswers.shift();
    if (answer === undefined) return untilAborted(options.signal);
    if (answer instanceof Error) throw answer;
    return answer;
  }

  watch(options: WatchOptions, onEvent: (event: WatchEvent<KubeObject>) => void): Promise<void> {
    const { promise, resolve, reject } = Promise.withResolvers<void>();
    options.signal.addEventListener('abort', () => (this.watchOnAbort === 'reject' ? reject(options.signal.reason) : resolve()), { once: true });
    const { signal: _signal, ...rest } = options;
    this.watches.push({ options: rest, emit: onEvent, end: resolve, fail: reject });
    return promise;
  }

  /** The i-th watch (0-based); fails the test if the reflector has not opened it. */
  liveWatch(i: number): LiveWatch {
    const watch = this.watches[i];
    assert.ok(watch, `expected watch #${i} to be open, but only ${this.watches.length} were started`);
    return watch;
  }
}

/** A jitter-free ExponentialBackoff that records how the reflector uses it. */
class RecordingBackoff implements Backoff {
  readonly calls: Array<'next' | 'reset'> = [];
  private readonly inner = new ExponentialBackoff({ initialMs: INITIAL_BACKOFF_MS, maxMs: MAX_BACKOFF_MS, jitter: 0 });

  next(): number {
    this.calls.push('next');
    return this.inner.next();
  }

  reset(): void {
    this.calls.push('reset');
    this.inner.reset();
  }
}

/** A Store that records the keys of every replace() call. */
class SpyStore extends Store<KubeObject> {
  readonly replaced: string[][] = [];

  override replace(objects: readonly KubeObject[]): void {
    this.replaced.push(objects.map(objectKey));
    super.replace(objects);
  }
}

type TunableOptions = Partial<
  Pick<ReflectorOptions<KubeObject>, 'pageSize' | 'minWatchTimeoutSeconds' | 'watchIdleTimeoutMs' | 'backoffResetAfterMs' | 'random' | 'streamingList'>
>;

function newHarness(options: TunableOptions = {}) {
  const clock = new FakeClock();
  const lw = new FakeListerWatcher();
  const store = new SpyStore();
  const backoff = new RecordingBackoff();
  const states: ReflectorState[] = [];
  const reflector = new Reflector<KubeObject>({
    name: 'test',
    listerWatcher: lw,
    store,
    backoff,
    clock,
    random: () => 0,
    onStateChange: (state) => states.push(state),
    ...options,
  });
  const controller = new AbortController();
  let running: Promise<void> | undefined;
  return {
    clock,
    lw,
    store,
    backoff,
    reflector,
    states,
    /** The recorded states in the notation of {@link show}. */
    shown: (): string[] => states.map(show),
    /** The current state, which also reflects watch events (they do not go through onStateChange). */
    current: (): string => show(reflector.state),
    async start(): Promise<void> {
      running = reflector.run(controller.signal);
      await flush();
    },
    /** Aborts the signal and checks that run() ends promptly in 'stopped', without leaving timers behind or counting a failure. */
    async stop(): Promise<void> {
      assert.ok(running, 'start() was not called');
      const backoffCalls = backoff.calls.length;
      controller.abort();
      assert.notEqual(await peek(running), PENDING, 'run() must resolve promptly once the signal aborts');
      assert.equal(show(reflector.state), 'stopped');
      assert.equal(states.at(-1)?.kind, 'stopped');
      assert.equal(clock.pendingTimers, 0, 'no timer may be left behind');
      assert.equal(backoff.calls.length, backoffCalls, 'stopping is not a failure: no backoff');
    },
  };
}

/** Compact notation for states: `listing`, `listing{c1}`, `watching{12}`, `backingOff{1000ms → watch{12}}`, `stopped`. */
function show(state: ReflectorState): string {
  switch (state.kind) {
    case 'listing':
      return state.continueToken ? `listing{${state.continueToken}}` : 'listing';
    case 'streaming':
      return 'streaming';
    case 'watching':
      return `watching{${state.resourceVersion}}`;
    case 'backingOff':
      return `backingOff{${state.delayMs}ms → ${state.then.kind === 'list' ? 'list' : `watch{${state.then.resourceVersion}}`}}`;
    case 'stopped':
      return 'stopped';
  }
}

function pod(name: string, resourceVersion: string): KubeObject {
  return { apiVersion: 'v1', kind: 'Pod', metadata: { namespace: 'ns', name, uid: `uid-${name}`, resourceVersion } };
}

function apiError(status: number, retryAfterMs?: number): KubeApiError {
  return new KubeApiError({ method: 'GET', path: '/x', status, body: '{}', retryAfterMs });
}

function page(resourceVersion: string, items: readonly KubeObject[], continueToken?: string): ListPage<KubeObject> {
  return { items, resourceVersion, ...(continueToken === undefined ? {} : { continueToken }) };
}

/** One complete list (a and b at resourceVersion 10): the usual starting point of the watch tests. */
function initialList(): ListPage<KubeObject> {
  return page('10', [pod('a', '5'), pod('b', '6')]);
}

function rvOf(store: Store<KubeObject>, key: string): string | undefined {
  return store.get(key)?.metadata?.resourceVersion;
}

describe('Reflector', () => {
  describe('initial list', () => {
    it("lists every page in order with the page size and each continue token, stores them once, then watches from the last page's resourceVersion", async () => {
      const h = newHarness({ pageSize: 2 });
      h.lw.listAnswers.push(
        page('10', [pod('a', '7'), pod('b', '8')], 'c1'),
        page('11', [pod('c', '9'), pod('d', '9')], 'c2'),
        page('12', [pod('e', '10')]),
      );
      await h.start();

      assert.deepEqual(h.lw.listCalls, [
        { limit: 2, continueToken: undefined },
        { limit: 2, continueToken: 'c1' },
        { limit: 2, continueToken: 'c2' },
      ]);
      assert.deepEqual(h.store.replaced, [['ns/a', 'ns/b', 'ns/c', 'ns/d', 'ns/e']], 'one replace with the items of all pages');
      assert.ok(h.store.hasSynced);
      assert.deepEqual(h.states, [
        { kind: 'listing', pages: 0 },
        { kind: 'listing', continueToken: 'c1', pages: 1 },
        { kind: 'listing', continueToken: 'c2', pages: 2 },
        { kind: 'watching', resourceVersion: '12' },
      ]);
      assert.equal(h.lw.watches.length, 1);
      assert.equal(h.lw.liveWatch(0).options.resourceVersion, '12');
      assert.deepEqual(h.backoff.calls, []);
      await h.stop();
    });

    const lastPages = [
      { name: 'an absent continue token marks the last page', last: page('10', [pod('a', '5')]) },
      { name: 'an empty continue token marks the last page', last: page('10', [pod('a', '5')], '') },
    ];
    for (const { name, last } of lastPages) {
      it(name, async () => {
        const h = newHarness();
        h.lw.listAnswers.push(last);
        await h.start();
        assert.equal(h.lw.listCalls.length, 1);
        assert.deepEqual(h.shown(), ['listing', 'watching{10}']);
        await h.stop();
      });
    }

    it(`asks for pages of ${DEFAULT_PAGE_SIZE} objects by default`, async () => {
      const h = newHarness();
      h.lw.listAnswers.push(initialList());
      await h.start();
      assert.deepEqual(h.lw.listCalls, [{ limit: DEFAULT_PAGE_SIZE, continueToken: undefined }]);
      await h.stop();
    });

    it('restarts the list from the first page when a continue token expired (410), without duplicating objects from the abandoned pages', async () => {
      const h = newHarness({ pageSize: 2 });
      h.lw.listAnswers.push(
        page('10', [pod('a', '7'), pod('b', '8')], 'c1'),
        apiError(410),
        page('20', [pod('a', '7'), pod('b', '15')], 'c2'),
        page('20', [pod('c', '18')]),
      );
      await h.start();

      assert.deepEqual(h.lw.listCalls, [
        { limit: 2, continueToken: undefined },
        { limit: 2, continueToken: 'c1' },
        { limit: 2, continueToken: undefined },
        { limit: 2, continueToken: 'c2' },
      ]);
      assert.deepEqual(h.store.replaced, [['ns/a', 'ns/b', 'ns/c']]);
      assert.equal(rvOf(h.store, 'ns/b'), '15', 'the restarted list wins over the abandoned one');
      assert.deepEqual(h.backoff.calls, [], 'an expired continue token is not a failure');
      assert.equal(h.current(), 'watching{20}');
      await h.stop();
    });

    it(
      'reports the restart after an expired continue token as a new listing{} state',
      async () => {
        const h = newHarness();
        h.lw.listAnswers.push(page('10', [pod('a', '7')], 'c1'), apiError(410), page('20', [pod('a', '7')], 'c2'), page('20', [pod('c', '18')]));
        await h.start();
        assert.deepEqual(h.shown(), ['listing', 'listing{c1}', 'listing', 'listing{c2}', 'watching{20}']);
        await h.stop();
      },
    );
  });

  describe('list failures', () => {
    const failures = [
      { name: 'a 500 backs off by the backoff delay', err: apiError(500), delayMs: INITIAL_BACKOFF_MS },
      { name: 'a network error backs off by the backoff delay', err: new TypeError('fetch failed'), delayMs: INITIAL_BACKOFF_MS },
      { name: 'a 410 on the first page (no continue token to drop) backs off by the backoff delay', err: apiError(410), delayMs: INITIAL_BACKOFF_MS },
      { name: 'a 429 whose Retry-After exceeds the backoff waits for the Retry-After', err: apiError(429, 5_000), delayMs: 5_000 },
      { name: 'a 429 whose Retry-After is below the backoff waits for the backoff', err: apiError(429, 200), delayMs: INITIAL_BACKOFF_MS },
    ];
    for (const { name, err, delayMs } of failures) {
      it(`${name}, then lists again from the first page`, async () => {
        const h = newHarness();
        h.lw.listAnswers.push(err, initialList());
        await h.start();
        assert.deepEqual(h.shown(), ['listing', `backingOff{${delayMs}ms → list}`]);
        assert.deepEqual(h.backoff.calls, ['next']);

        h.clock.advance(delayMs - 1);
        await flush();
        assert.equal(h.lw.listCalls.length, 1, 'must not list before the delay elapsed');

        h.clock.advance(1);
        await flush();
        assert.deepEqual(h.shown(), ['listing', `backingOff{${delayMs}ms → list}`, 'listing', 'watching{10}']);
        assert.deepEqual(h.lw.listCalls[1], { limit: DEFAULT_PAGE_SIZE, continueToken: undefined });
        assert.equal(h.store.size, 2);
        await h.stop();
      });
    }

    it('a failure on a later page backs off, then lists again from the first page', async () => {
      const h = newHarness();
      h.lw.listAnswers.push(page('10', [pod('a', '5')], 'c1'), apiError(500), page('20', [pod('a', '5')], 'c2'), page('20', [pod('b', '19')]));
      await h.start();
      assert.equal(h.current(), `backingOff{${INITIAL_BACKOFF_MS}ms → list}`);
      h.clock.advance(INITIAL_BACKOFF_MS);
      await flush();
      assert.deepEqual(
        h.lw.listCalls.map((call) => call.continueToken),
        [undefined, 'c1', undefined, 'c2'],
      );
      assert.deepEqual(h.store.replaced, [['ns/a', 'ns/b']]);
      await h.stop();
    });

    it('backs off longer after each consecutive failure', async () => {
      const h = newHarness();
      h.lw.listAnswers.push(apiError(500), apiError(503), initialList());
      await h.start();
      h.clock.advance(INITIAL_BACKOFF_MS);
      await flush();
      assert.deepEqual(h.shown(), ['listing', 'backingOff{1000ms → list}', 'listing', 'backingOff{2000ms → list}']);
      h.clock.advance(2 * INITIAL_BACKOFF_MS);
      await flush();
      assert.equal(h.current(), 'watching{10}');
      await h.stop();
    });

    it('survives a store handler that throws while the list is stored: backs off and lists again', async () => {
      const h = newHarness();
      let throwOnce = true;
      h.store.subscribe({
        onAdd: () => {
          if (!throwOnce) return;
          throwOnce = false;
          throw new Error('handler bug');
        },
      });
      h.lw.listAnswers.push(initialList(), initialList());
      await h.start();
      assert.deepEqual(h.shown(), ['listing', `backingOff{${INITIAL_BACKOFF_MS}ms → list}`]);
      h.clock.advance(INITIAL_BACKOFF_MS);
      await flush();
      assert.equal(h.current(), 'watching{10}');
      assert.equal(h.store.size, 2);
      await h.stop();
    });
  });

  describe('watch', () => {
    it('applies ADDED, MODIFIED, DELETED and BOOKMARK events to the store and advances the resourceVersion', async () => {
      const h = newHarness();
      h.lw.listAnswers.push(initialList());
      await h.start();
      const watch = h.lw.liveWatch(0);
      assert.equal(watch.options.resourceVersion, '10');

      const steps: Array<{ event: WatchEvent<KubeObject>; state: string; store: Record<string, string> }> = [
        { event: { type: 'ADDED', object: pod('c', '11') }, state: 'watching{11}', store: { 'ns/a': '5', 'ns/b': '6', 'ns/c': '11' } },
        { event: { type: 'MODIFIED', object: pod('a', '12') }, state: 'watching{12}', store: { 'ns/a': '12', 'ns/b': '6', 'ns/c': '11' } },
        { event: { type: 'DELETED', object: pod('b', '13') }, state: 'watching{13}', store: { 'ns/a': '12', 'ns/c': '11' } },
        { event: { type: 'BOOKMARK', resourceVersion: '20' }, state: 'watching{20}', store: { 'ns/a': '12', 'ns/c': '11' } },
        { event: { type: 'BOOKMARK', resourceVersion: '' }, state: 'watching{20}', store: { 'ns/a': '12', 'ns/c': '11' } },
      ];
      for (const { event, state, store } of steps) {
        watch.emit(event);
        const label = `after ${event.type} ${JSON.stringify(event)}`;
        assert.equal(h.current(), state, label);
        assert.deepEqual(Object.fromEntries(h.store.list().map((o) => [objectKey(o), o.metadata?.resourceVersion])), store, label);
      }
      assert.equal(h.reflector.stats.events, steps.length);

      watch.end();
      await flush();
      assert.equal(h.lw.liveWatch(1).options.resourceVersion, '20', 'the next watch resumes at the latest resourceVersion, a bookmark included');
      await h.stop();
    });

    it('reconnects at once from the last resourceVersion when the server ends the watch: no relist, no backoff', async () => {
      const h = newHarness();
      h.lw.listAnswers.push(initialList());
      await h.start();
      const first = h.lw.liveWatch(0);
      first.emit({ type: 'ADDED', object: pod('c', '11') });
      h.clock.advance(HEALTHY_WATCH_MS);
      first.end();
      await flush();

      assert.deepEqual(h.shown(), ['listing', 'watching{10}', 'watching{11}']);
      assert.equal(h.lw.liveWatch(1).options.resourceVersion, '11');
      assert.equal(h.lw.listCalls.length, 1);
      assert.equal(h.reflector.stats.relists, 0);
      assert.deepEqual(h.backoff.calls, []);
      assert.equal(h.clock.pendingTimers, 0);
      await h.stop();
    });

    it(
      'backs off instead of reconnecting in a hot loop when a watch ends at once without any event',
      async () => {
        const h = newHarness();
        h.lw.listAnswers.push(initialList());
        await h.start();
        h.lw.liveWatch(0).end();
        await flush();
        assert.equal(h.current(), `backingOff{${INITIAL_BACKOFF_MS}ms → watch{10}}`);
        assert.equal(h.lw.watches.length, 1);
        await h.stop();
      },
    );
  });

  describe('watch failures', () => {
    const gone = [
      {
        name: 'an ERROR event with code 410',
        failWatch: (w: LiveWatch) => {
          w.emit({ type: 'ERROR', code: 410, message: 'too old resource version: 11 (40)' });
          w.end();
        },
      },
      { name: 'an HTTP 410 from the watch request', failWatch: (w: LiveWatch) => w.fail(apiError(410)) },
    ];
    for (const { name, failWatch } of gone) {
      it(`${name} relists at once, and the relist drops objects deleted meanwhile`, async () => {
        const h = newHarness();
        h.lw.listAnswers.push(initialList(), page('40', [pod('a', '5'), pod('c', '30')]));
        await h.start();
        const watch = h.lw.liveWatch(0);
        watch.emit({ type: 'ADDED', object: pod('c', '11') });
        failWatch(watch);
        await flush();

        assert.deepEqual(h.shown(), ['listing', 'watching{10}', 'listing', 'watching{40}']);
        assert.equal(h.lw.listCalls.length, 2);
        assert.equal(h.reflector.stats.relists, 1);
        assert.deepEqual(h.backoff.calls, []);
        assert.deepEqual(h.store.keys().sort(), ['ns/a', 'ns/c']);
        assert.equal(rvOf(h.store, 'ns/c'), '30');
        assert.equal(h.lw.liveWatch(1).options.resourceVersion, '40');
        await h.stop();
      });
    }

    const retryable = [
      {
        name: 'an ERROR event with another code',
        failWatch: (w: LiveWatch) => {
          w.emit({ type: 'ERROR', code: 500, message: 'internal error' });
          w.end();
        },
        delayMs: INITIAL_BACKOFF_MS,
      },
      { name: 'an HTTP 500 from the watch request', failWatch: (w: LiveWatch) => w.fail(apiError(500)), delayMs: INITIAL_BACKOFF_MS },
      { name: 'a connection reset', failWatch: (w: LiveWatch) => w.fail(new Error('read ECONNRESET')), delayMs: INITIAL_BACKOFF_MS },
      { name: 'a 429 with a Retry-After above the backoff', failWatch: (w: LiveWatch) => w.fail(apiError(429, 7_000)), delayMs: 7_000 },
    ];
    for (const { name, failWatch, delayMs } of retryable) {
      it(`${name} backs off, then resumes the watch from the last resourceVersion without listing`, async () => {
        const h = newHarness();
        h.lw.listAnswers.push(initialList());
        await h.start();
        const watch = h.lw.liveWatch(0);
        watch.emit({ type: 'ADDED', object: pod('c', '11') });
        failWatch(watch);
        await flush();
        assert.deepEqual(h.shown(), ['listing', 'watching{10}', `backingOff{${delayMs}ms → watch{11}}`]);
        assert.deepEqual(h.backoff.calls, ['next']);

        h.clock.advance(delayMs - 1);
        await flush();
        assert.equal(h.lw.watches.length, 1, 'must not reconnect before the delay elapsed');

        h.clock.advance(1);
        await flush();
        assert.equal(h.current(), 'watching{11}');
        assert.equal(h.lw.liveWatch(1).options.resourceVersion, '11');
        assert.equal(h.lw.listCalls.length, 1);
        assert.ok(h.store.get('ns/c'), 'the store keeps what the failed watch delivered');
        await h.stop();
      });
    }

    it('ignores events that follow an ERROR event in the same stream', async () => {
      const h = newHarness();
      h.lw.listAnswers.push(initialList());
      await h.start();
      const watch = h.lw.liveWatch(0);
      watch.emit({ type: 'ERROR', code: 500, message: 'internal error' });
      watch.emit({ type: 'ADDED', object: pod('x', '99') });
      watch.end();
      await flush();
      assert.equal(h.store.get('ns/x'), undefined);
      assert.equal(h.current(), `backingOff{${INITIAL_BACKOFF_MS}ms → watch{10}}`);
      await h.stop();
    });
  });

  describe('backoff cap', () => {
    it('a Retry-After above 30 s is waited for 30 s at most (the server is asked again then)', async () => {
      const h = newHarness();
      h.lw.listAnswers.push(apiError(429, 120_000), initialList());
      await h.start();
      assert.deepEqual(h.shown(), ['listing', 'backingOff{30000ms → list}']);
      await h.stop();
    });

    // client-go adds up to 100 % jitter on top of its 30 s cap: a reflector there (and here,
    // before) could wait 60 s, leaving a deleted pod in its Role long after the server was back.
    it('an informer against a server that stays down never waits more than 30 s between attempts, and its waits stay spread', { timeout: 20_000 }, async () => {
      const client = await unreachableClient();
      const clock = new FakeClock();
      const informer = new Informer({ client, type: Resources.pods, clock });
      const controller = new AbortController();
      const running = informer.run(controller.signal);
      const delays: number[] = [];
      let previous: unknown;
      try {
        while (delays.length < 14) {
          for (let i = 0; i < 2_000 && (informer.reflector.state === previous || informer.reflector.state.kind !== 'backingOff'); i++) {
            await new Promise((resolve) => setTimeout(resolve, 2));
          }
          const state = informer.reflector.state;
          assert.equal(state.kind, 'backingOff', 'a refused connection backs off');
          previous = state;
          delays.push((state as { delayMs: number }).delayMs);
          clock.advance((state as { delayMs: number }).delayMs);
        }
      } finally {
        controller.abort();
        await running;
        await client.close();
      }
      assert.ok(Math.max(...delays) <= 30_000, `waits: ${delays.map((d) => Math.round(d)).join(', ')} ms`);
      assert.ok(delays[0]! >= 800 && delays[0]! < 1_600, `the first wait is 800 ms plus jitter, got ${delays[0]}`);
      const atCap = delays.slice(-6);
      assert.ok(Math.min(...atCap) >= 15_000, `at the cap the waits spread over [15 s, 30 s]: ${atCap.join(', ')}`);
      assert.ok(new Set(atCap).size > 1, 'jittered, not in lockstep');
    });
  });

  describe('backoff reset', () => {
    // The list fails once first, so the backoff has grown: the delay of the later watch failure
    // shows whether the healthy watch in between reset it.
    const cases = [
      { name: 'a watch that lasted backoffResetAfterMs resets the backoff', options: { backoffResetAfterMs: 60_000 }, watchMs: 60_000, reset: true },
      { name: 'a shorter watch leaves the backoff alone', options: { backoffResetAfterMs: 60_000 }, watchMs: 59_999, reset: false },
      { name: `by default a watch of ${DEFAULT_BACKOFF_RESET_AFTER_MS} ms resets the backoff`, options: {}, watchMs: DEFAULT_BACKOFF_RESET_AFTER_MS, reset: true },
      { name: 'by default a shorter watch leaves the backoff alone', options: {}, watchMs: DEFAULT_BACKOFF_RESET_AFTER_MS - 1, reset: false },
    ];
    for (const { name, options, watchMs, reset } of cases) {
      it(name, async () => {
        const h = newHarness(options);
        h.lw.listAnswers.push(apiError(500), initialList());
        await h.start();
        h.clock.advance(INITIAL_BACKOFF_MS);
        await flush();

        const healthy = h.lw.liveWatch(0);
        healthy.emit({ type: 'BOOKMARK', resourceVersion: '11' });
        h.clock.advance(watchMs);
        healthy.end();
        await flush();
        h.lw.liveWatch(1).fail(new Error('read ECONNRESET'));
        await flush();

        assert.deepEqual(h.backoff.calls, reset ? ['next', 'reset', 'next'] : ['next', 'next']);
        assert.equal(h.current(), `backingOff{${reset ? INITIAL_BACKOFF_MS : 2 * INITIAL_BACKOFF_MS}ms → watch{11}}`);
        await h.stop();
      });
    }

    it(
      'a watch that was healthy for backoffResetAfterMs before it broke backs off from the initial delay',
      async () => {
        const h = newHarness();
        h.lw.listAnswers.push(apiError(500), initialList());
        await h.start();
        h.clock.advance(INITIAL_BACKOFF_MS);
        await flush();
        const watch = h.lw.liveWatch(0);
        watch.emit({ type: 'BOOKMARK', resourceVersion: '11' });
        h.clock.advance(DEFAULT_BACKOFF_RESET_AFTER_MS);
        watch.fail(new Error('read ECONNRESET'));
        await flush();
        assert.equal(h.current(), `backingOff{${INITIAL_BACKOFF_MS}ms → watch{11}}`);
        await h.stop();
      },
    );
  });

  describe('watch timeout', () => {
    it('draws the server-side timeout from [min, 2·min) with the injected random, once per watch', async () => {
      const minWatchTimeoutSeconds = 60;
      const draws = [0, 0.5, 0.999_999];
      let calls = 0;
      const h = newHarness({ minWatchTimeoutSeconds, watchIdleTimeoutMs: 45_000, random: () => draws[calls++] ?? 0 });
      h.lw.listAnswers.push(initialList());
      await h.start();
      for (let i = 0; i < draws.length - 1; i++) {
        const watch = h.lw.liveWatch(i);
        watch.emit({ type: 'BOOKMARK', resourceVersion: String(11 + i) });
        h.clock.advance(HEALTHY_WATCH_MS);
        watch.end();
        await flush();
      }

      const timeouts = h.lw.watches.map((w) => w.options.timeoutSeconds);
      assert.deepEqual(timeouts, [60, 90, 119]);
      for (const t of timeouts) assert.ok(t >= minWatchTimeoutSeconds && t < 2 * minWatchTimeoutSeconds, `${t} s outside [min, 2·min)`);
      assert.equal(calls, draws.length);
      assert.ok(h.lw.watches.every((w) => w.options.idleTimeoutMs === 45_000));
      await h.stop();
    });

    it(`defaults to a minimum of ${DEFAULT_MIN_WATCH_TIMEOUT_SECONDS} s and an idle timeout of ${DEFAULT_WATCH_IDLE_TIMEOUT_MS} ms`, async () => {
      const h = newHarness();
      h.lw.listAnswers.push(initialList());
      await h.start();
      const { timeoutSeconds, idleTimeoutMs } = h.lw.liveWatch(0).options;
      assert.deepEqual({ timeoutSeconds, idleTimeoutMs }, { timeoutSeconds: DEFAULT_MIN_WATCH_TIMEOUT_SECONDS, idleTimeoutMs: DEFAULT_WATCH_IDLE_TIMEOUT_MS });
      await h.stop();
    });
  });

  describe('stop', () => {
    const cases: Array<{ name: string; setUp: (h: ReturnType<typeof newHarness>) => void; before: string }> = [
      { name: 'while listing the first page', setUp: () => {}, before: 'listing' },
      { name: 'while listing a later page', setUp: (h) => h.lw.listAnswers.push(page('10', [pod('a', '5')], 'c1')), before: 'listing{c1}' },
      { name: 'while watching (the watch rejects on abort)', setUp: (h) => h.lw.listAnswers.push(initialList()), before: 'watching{10}' },
      {
        name: 'while watching (the watch ends quietly on abort)',
        setUp: (h) => {
          h.lw.listAnswers.push(initialList());
          h.lw.watchOnAbort = 'resolve';
        },
        before: 'watching{10}',
      },
      { name: 'while backing off', setUp: (h) => h.lw.listAnswers.push(apiError(500)), before: `backingOff{${INITIAL_BACKOFF_MS}ms → list}` },
    ];
    for (const { name, setUp, before } of cases) {
      it(`aborting the signal ${name} ends run() in state stopped, with no timer left`, async () => {
        const h = newHarness();
        setUp(h);
        await h.start();
        assert.equal(h.current(), before);
        const calls = { lists: h.lw.listCalls.length, watches: h.lw.watches.length };
        await h.stop(); // asserts: run() settled, state stopped, no pending timer
        assert.deepEqual(h.shown().slice(-2), [before, 'stopped']);
        assert.deepEqual({ lists: h.lw.listCalls.length, watches: h.lw.watches.length }, calls, 'no call after the abort');
      });
    }

    it('an already aborted signal stops at once without listing', async () => {
      const h = newHarness();
      const controller = new AbortController();
      controller.abort();
      await h.reflector.run(controller.signal);
      assert.deepEqual(h.shown(), ['stopped']);
      assert.equal(h.lw.listCalls.length, 0);
    });
  });
});

describe('Reflector full syncs after the first (client-go relistResourceVersion)', () => {
  const tooLarge = (): KubeApiError => new KubeApiError({
    method: 'GET', path: '/x', status: 504,
    body: JSON.stringify({ kind: 'Status', code: 504, reason: 'Timeout', message: 'Timeout: Too large resource version: 20, current: 10', details: { causes: [{ reason: 'ResourceVersionTooLarge', message: 'Too large resource version' }] } }),
  });

  /** Lists, watches, sees c at 11 and a bookmark at 15, then the watch expires. */
  async function expiredAfterRv15(h: ReturnType<typeof newHarness>): Promise<void> {
    await h.start();
    const watch = h.lw.liveWatch(0);
    watch.emit({ type: 'ADDED', object: pod('c', '11') });
    watch.emit({ type: 'BOOKMARK', resourceVersion: '15' });
    watch.emit({ type: 'ERROR', code: 410, message: 'too old resource version: 15 (40)' });
    watch.end();
    await flush();
  }

  it('relists after an expired watch at the last resourceVersion it saw (NotOlderThan, served from the watch cache), not at ""', async () => {
    const h = newHarness();
    h.lw.listAnswers.push(initialList(), page('40', [pod('a', '5')]));
    await expiredAfterRv15(h);
    assert.deepEqual(h.lw.listCalls, [
      { limit: DEFAULT_PAGE_SIZE, continueToken: undefined },
      { limit: DEFAULT_PAGE_SIZE, continueToken: undefined, resourceVersion: '15' },
    ]);
    assert.equal(h.current(), 'watching{40}');
    assert.deepEqual(h.backoff.calls, []);
    await h.stop();
  });

  for (const [name, err] of [['410 Gone', apiError(410)], ['"too large resource version" (504)', tooLarge()]] as const) {
    it(`when the server answers that relist with ${name}, lists again at once at the latest state (""), then at its resourceVersion next time`, async () => {
      const h = newHarness();
      h.lw.listAnswers.push(initialList(), err, page('40', [pod('a', '5')]), page('50', [pod('a', '5')]));
      await expiredAfterRv15(h);
      assert.deepEqual(h.lw.listCalls.map((c) => c.resourceVersion ?? '""'), ['""', '15', '""']);
      assert.deepEqual(h.backoff.calls, [], 'no backoff: the server answered, just not at that resourceVersion');
      assert.equal(h.current(), 'watching{40}');

      const second = h.lw.liveWatch(1);
      second.emit({ type: 'BOOKMARK', resourceVersion: '45' });
      second.fail(apiError(410));
      await flush();
      assert.equal(h.lw.listCalls[3]?.resourceVersion, '45', 'a successful list makes the last resourceVersion usable again');
      await h.stop();
    });
  }

  it('asks for the resourceVersion with the first page only: continue tokens carry their own', async () => {
    const h = newHarness({ pageSize: 1 });
    h.lw.listAnswers.push(initialList(), page('40', [pod('a', '5')], 'c1'), page('40', [pod('b', '6')]));
    await expiredAfterRv15(h);
    assert.deepEqual(h.lw.listCalls.slice(1), [
      { limit: 1, continueToken: undefined, resourceVersion: '15' },
      { limit: 1, continueToken: 'c1' },
    ]);
    await h.stop();
  });

  it('an error that says nothing about the resourceVersion backs off, and the retry asks for the same resourceVersion', async () => {
    const h = newHarness();
    h.lw.listAnswers.push(initialList(), apiError(500), page('40', [pod('a', '5')]));
    await expiredAfterRv15(h);
    assert.equal(h.current(), `backingOff{${INITIAL_BACKOFF_MS}ms → list}`);
    h.clock.advance(INITIAL_BACKOFF_MS);
    await flush();
    assert.deepEqual(h.lw.listCalls.map((c) => c.resourceVersion ?? '""'), ['""', '15', '15']);
    await h.stop();
  });
});

describe('Reflector streaming lists (WatchList)', () => {
  const endBookmark = (resourceVersion: string): WatchEvent<KubeObject> => ({ type: 'BOOKMARK', resourceVersion, initialEventsEnd: true });

  it('gathers the initial events apart, replaces the store once at the end bookmark, and goes on watching on the same stream', async () => {
    const h = newHarness({ streamingList: true });
    await h.start();
    assert.deepEqual(h.shown(), ['streaming']);
    const stream = h.lw.liveWatch(0);
    assert.equal(stream.options.sendInitialEvents, true);
    assert.equal(stream.options.resourceVersion, '');
    stream.emit({ type: 'ADDED', object: pod('a', '5') });
    stream.emit({ type: 'ADDED', object: pod('b', '6') });
    stream.emit({ type: 'BOOKMARK', resourceVersion: '8' });
    assert.equal(h.store.hasSynced, false, 'not synced before the end bookmark');
    assert.equal(h.store.size, 0, 'initial events are not applied one by one');

    stream.emit(endBookmark('10'));
    assert.deepEqual(h.store.replaced, [['ns/a', 'ns/b']]);
    assert.ok(h.store.hasSynced);
    assert.equal(h.current(), 'watching{10}');
    stream.emit({ type: 'MODIFIED', object: pod('a', '11') });
    assert.equal(rvOf(h.store, 'ns/a'), '11', 'after the bookmark the stream is the watch');
    assert.equal(h.lw.listCalls.length, 0);
    assert.deepEqual({ lists: h.reflector.stats.lists, streams: h.reflector.stats.streams }, { lists: 1, streams: 1 });
    await h.stop();
  });

  it('relists after an expiry by streaming at the last resourceVersion; a stream broken before its end bookmark leaves the store as it was and backs off', async () => {
    const h = newHarness({ streamingList: true });
    await h.start();
    const first = h.lw.liveWatch(0);
    first.emit({ type: 'ADDED', object: pod('a', '5') });
    first.emit(endBookmark('10'));
    first.emit({ type: 'BOOKMARK', resourceVersion: '12' });
    first.fail(apiError(410));
    await flush();
    const second = h.lw.liveWatch(1);
    assert.deepEqual({ sendInitialEvents: second.options.sendInitialEvents, resourceVersion: second.options.resourceVersion }, { sendInitialEvents: true, resourceVersion: '12' });
    second.emit({ type: 'ADDED', object: pod('x', '13') });
    second.fail(new Error('read ECONNRESET'));
    await flush();
    assert.equal(h.current(), `backingOff{${INITIAL_BACKOFF_MS}ms → list}`);
    assert.deepEqual(h.store.keys(), ['ns/a'], 'half a stream is never stored');

    h.clock.advance(INITIAL_BACKOFF_MS);
    await flush();
    assert.equal(h.lw.liveWatch(2).options.sendInitialEvents, true);
    await h.stop();
  });

  const unsupported = [
    { name: 'refuses it (422 Invalid: WatchList is off)', breakStream: (w: LiveWatch) => w.fail(apiError(422)) },
    { name: 'refuses it (400 Bad Request)', breakStream: (w: LiveWatch) => w.fail(apiError(400)) },
    {
      name: 'ignores it (the stream ends without the end bookmark)',
      breakStream: (w: LiveWatch) => {
        w.emit({ type: 'ADDED', object: pod('a', '5') });
        w.end();
      },
    },
  ];
  for (const { name, breakStream } of unsupported) {
    it(`a server that ${name} gets paged lists from then on, without backoff`, async () => {
      const h = newHarness({ streamingList: true });
      h.lw.listAnswers.push(initialList(), page('40', [pod('a', '5')]));
      await h.start();
      breakStream(h.lw.liveWatch(0));
      await flush();
      assert.deepEqual(h.shown(), ['streaming', 'listing', 'watching{10}']);
      assert.deepEqual(h.backoff.calls, []);
      h.lw.liveWatch(1).fail(apiError(410));
      await flush();
      assert.equal(h.lw.watches[2]?.options.sendInitialEvents, undefined, 'the relist is a paged list too');
      assert.deepEqual(h.lw.listCalls.map((c) => c.resourceVersion ?? '""'), ['""', '10']);
      await h.stop();
    });
  }
});
