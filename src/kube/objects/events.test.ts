import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { ApiException } from '@kubernetes/client-node';
import { Registry } from 'prom-client';
import { FakeClock } from '../clock.ts';
import {
  DEFAULT_SERIES_WINDOW_MS,
  EventRecorder,
  EventSeriesCache,
  eventName,
  eventNamespace,
  eventsApiSink,
  NOTE_MAX_BYTES,
  seriesKey,
  truncateNote,
  type EventObject,
  type EventSink,
  type EventsApi,
  type RegardingObject,
} from './events.ts';

const T0 = 1_700_000_000_000;
const MINUTE_MS = 60_000;

const pod: RegardingObject = { apiVersion: 'v1', kind: 'Pod', namespace: 'team-a', name: 'web-0', uid: 'pod-uid' };
const node: RegardingObject = { apiVersion: 'v1', kind: 'Node', name: 'node-1', uid: 'node-uid' };

describe('event naming', () => {
  it('names an Event <regarding name>.<hex nanosecond timestamp>, like client-go', () => {
    assert.equal(eventName('web-0', BigInt(T0) * 1_000_000n), `web-0.${(BigInt(T0) * 1_000_000n).toString(16)}`);
  });

  it('shortens a long regarding name to keep a valid object name', () => {
    const nanos = BigInt(T0) * 1_000_000n;
    const suffix = `.${nanos.toString(16)}`;
    const room = 253 - suffix.length;
    // The cut at `room` characters falls right after the dash.
    const name = eventName(`${'a'.repeat(room - 1)}-${'b'.repeat(20)}`, nanos);
    assert.equal(name, `${'a'.repeat(room - 1)}${suffix}`, 'the cut does not leave a trailing dash');
  });

  it('stores Events of cluster-scoped objects in the default namespace', () => {
    assert.equal(eventNamespace(node), 'default');
    assert.equal(eventNamespace(pod), 'team-a');
  });
});

describe('truncateNote', () => {
  it('keeps a note within the 1 kB the API allows, without splitting a multi-byte character', () => {
    const note = 'é'.repeat(NOTE_MAX_BYTES);
    const cut = truncateNote(note);
    assert.ok(Buffer.byteLength(cut, 'utf8') <= NOTE_MAX_BYTES);
    assert.match(cut, /^é+\.\.\.$/);
    assert.equal(truncateNote('short'), 'short');
  });
});

describe('EventSeriesCache', () => {
  let names = 0;
  const newEvent = () => ({ namespace: 'team-a', name: `e${++names}` });

  it('starts a series on the first occurrence and counts repeats within the window', () => {
    const cache = new EventSeriesCache();
    const first = cache.record('k', T0, newEvent);
    assert.equal(first.kind, 'first');
    const second = cache.record('k', T0 + MINUTE_MS, newEvent);
    const third = cache.record('k', T0 + 2 * MINUTE_MS, newEvent);
    assert.equal(second.kind, 'repeat');
    assert.equal(third.entry, first.entry);
    assert.equal(third.entry.count, 3);
    assert.equal(third.entry.firstObservedMs, T0);
    assert.equal(third.entry.lastObservedMs, T0 + 2 * MINUTE_MS);
  });

  const windowCases = [
    { gapMs: DEFAULT_SERIES_WINDOW_MS, kind: 'repeat' },
    { gapMs: DEFAULT_SERIES_WINDOW_MS + 1, kind: 'first' },
  ] as const;
  for (const c of windowCases) {
    it(`treats an occurrence ${c.gapMs} ms after the previous one as ${c.kind === 'first' ? 'a new series' : 'a repeat'}`, () => {
      const cache = new EventSeriesCache();
      const first = cache.record('k', T0, newEvent);
      const next = cache.record('k', T0 + c.gapMs, newEvent);
      assert.equal(next.kind, c.kind);
      assert.equal(next.entry.name === first.entry.name, c.kind === 'repeat');
    });
  }

  it('measures the window from the latest occurrence, so a recurring problem stays one Event', () => {
    const cache = new EventSeriesCache();
    const first = cache.record('k', T0, newEvent);
    for (let minute = 6; minute <= 60; minute += 6) cache.record('k', T0 + minute * MINUTE_MS, newEvent);
    assert.equal(first.entry.count, 11);
  });

  it('forgets the least recently seen series when full', () => {
    const cache = new EventSeriesCache({ maxEntries: 2 });
    cache.record('a', T0, newEvent);
    cache.record('b', T0, newEvent);
    cache.record('a', T0 + 1, newEvent); // a is now the most recently seen
    cache.record('c', T0 + 2, newEvent); // evicts b
    assert.equal(cache.size, 2);
    assert.equal(cache.record('a', T0 + 3, newEvent).kind, 'repeat');
    assert.equal(cache.record('b', T0 + 4, newEvent).kind, 'first');
  });

  it('keys series by regarding object, type, reason, action and note', () => {
    const base = seriesKey(pod, 'Warning', 'ProbeFailed', 'Probe', 'timeout');
    assert.equal(seriesKey({ ...pod }, 'Warning', 'ProbeFailed', 'Probe', 'timeout'), base);
    for (const other of [
      seriesKey({ ...pod, uid: 'other-uid' }, 'Warning', 'ProbeFailed', 'Probe', 'timeout'),
      seriesKey(pod, 'Normal', 'ProbeFailed', 'Probe', 'timeout'),
      seriesKey(pod, 'Warning', 'ProbeOK', 'Probe', 'timeout'),
      seriesKey(pod, 'Warning', 'ProbeFailed', 'Reconcile', 'timeout'),
      seriesKey(pod, 'Warning', 'ProbeFailed', 'Probe', 'refused'),
    ]) {
      assert.notEqual(other, base);
    }
  });
});

// ---------------------------------------------------------------------------------------------

type SinkCall =
  | { readonly op: 'create'; readonly event: EventObject }
  | { readonly op: 'update'; readonly namespace: string; readonly name: string; readonly count: number; readonly lastObservedMs: number };

/** Records writes; each call can be held open (`hold`) or made to fail once (`failNext`). */
class FakeSink implements EventSink {
  readonly calls: SinkCall[] = [];
  private held: Array<() => void> | undefined;
  private failures: unknown[] = [];

  hold(): void {
    this.held = [];
  }

  release(): void {
    const waiting = this.held ?? [];
    this.held = undefined;
    for (const resume of waiting) resume();
  }

  failNext(error: unknown): void {
    this.failures.push(error);
  }

  create(event: EventObject): Promise<unknown> {
    return this.answer({ op: 'create', event: JSON.parse(JSON.stringify(event)) as EventObject });
  }

  updateSeries(namespace: string, name: string, series: { count: number; lastObservedMs: number }): Promise<unknown> {
    return this.answer({ op: 'update', namespace, name, ...series });
  }

  private async answer(call: SinkCall): Promise<unknown> {
    this.calls.push(call);
    if (this.held) await new Promise<void>((resume) => this.held?.push(resume));
    const failure = this.failures.shift();
    if (failure) throw failure;
    return {};
  }
}

function newRecorder(registry = new Registry()) {
  const clock = new FakeClock(T0);
  const sink = new FakeSink();
  const recorder = new EventRecorder({ sink, reportingInstance: 'operator-7f9c', clock, registry });
  return { clock, sink, recorder, registry };
}

async function failedTotal(registry: Registry, operation: string): Promise<number> {
  const values = (await registry.getSingleMetric('crowsnest_events_failed_total')?.get())?.values ?? [];
  return values.find((v) => v.labels['operation'] === operation)?.value ?? 0;
}

describe('EventRecorder', () => {
  it('creates an events.k8s.io/v1 Event describing the occurrence', async () => {
    const { recorder, sink } = newRecorder();
    recorder.event(pod, 'Warning', 'ProbeFailed', 'Probe', 'connection refused');
    await recorder.flush();
    assert.equal(sink.calls.length, 1);
    const call = sink.calls[0];
    assert.equal(call?.op, 'create');
    assert.deepEqual(call.op === 'create' && call.event, {
      apiVersion: 'events.k8s.io/v1',
      kind: 'Event',
      metadata: { namespace: 'team-a', name: `web-0.${(BigInt(T0) * 1_000_000n).toString(16)}` },
      eventTime: '2023-11-14T22:13:20.000000Z',
      reportingController: 'crowsnest.dev/operator',
      reportingInstance: 'operator-7f9c',
      regarding: { apiVersion: 'v1', kind: 'Pod', namespace: 'team-a', name: 'web-0', uid: 'pod-uid' },
      type: 'Warning',
      reason: 'ProbeFailed',
      action: 'Probe',
      note: 'connection refused',
    });
  });

  it('records an Event about a cluster-scoped object in the default namespace', async () => {
    const { recorder, sink } = newRecorder();
    recorder.event(node, 'Normal', 'Cordoned', 'Cordon', 'guard policy strict');
    await recorder.flush();
    const call = sink.calls[0];
    assert.equal(call?.op === 'create' && call.event.metadata?.namespace, 'default');
    assert.equal(call?.op === 'create' && call.event.regarding?.namespace, undefined);
  });

  it('turns a repeat within the window into a series update of the same Event', async () => {
    const { recorder, sink, clock } = newRecorder();
    recorder.event(pod, 'Warning', 'ProbeFailed', 'Probe', 'connection refused');
    await recorder.flush();
    clock.advance(MINUTE_MS);
    recorder.event(pod, 'Warning', 'ProbeFailed', 'Probe', 'connection refused');
    await recorder.flush();
    clock.advance(MINUTE_MS);
    recorder.event(pod, 'Warning', 'ProbeFailed', 'Probe', 'connection refused');
    await recorder.flush();
    const created = sink.calls[0];
    const name = created?.op === 'create' ? created.event.metadata?.name : undefined;
    assert.deepEqual(sink.calls.slice(1), [
      { op: 'update', namespace: 'team-a', name, count: 2, lastObservedMs: T0 + MINUTE_MS },
      { op: 'update', namespace: 'team-a', name, count: 3, lastObservedMs: T0 + 2 * MINUTE_MS },
    ]);
  });

  it('creates a new Event when the same occurrence comes back after the window', async () => {
    const { recorder, sink, clock } = newRecorder();
    recorder.event(pod, 'Warning', 'ProbeFailed', 'Probe', 'connection refused');
    clock.advance(DEFAULT_SERIES_WINDOW_MS + 1);
    recorder.event(pod, 'Warning', 'ProbeFailed', 'Probe', 'connection refused');
    await recorder.flush();
    assert.deepEqual(sink.calls.map((c) => c.op), ['create', 'create']);
    const [a, b] = sink.calls.map((c) => (c.op === 'create' ? c.event.metadata?.name : ''));
    assert.notEqual(a, b);
  });

  it('gives distinct Events recorded in the same millisecond distinct names', async () => {
    const { recorder, sink } = newRecorder();
    recorder.event(pod, 'Normal', 'Started', 'Reconcile', 'one');
    recorder.event(pod, 'Normal', 'Started', 'Reconcile', 'two');
    await recorder.flush();
    const names = sink.calls.map((c) => (c.op === 'create' ? c.event.metadata?.name : ''));
    assert.equal(new Set(names).size, 2);
  });

  it('folds repeats that arrive while a write is in flight into one follow-up update', async () => {
    const { recorder, sink, clock } = newRecorder();
    sink.hold();
    recorder.event(pod, 'Warning', 'ProbeFailed', 'Probe', 'connection refused');
    for (let i = 0; i < 3; i++) {
      clock.advance(1_000);
      recorder.event(pod, 'Warning', 'ProbeFailed', 'Probe', 'connection refused');
    }
    assert.equal(sink.calls.length, 1, 'nothing else is sent while the create is open');
    sink.release();
    await recorder.flush();
    assert.deepEqual(
      sink.calls.map((c) => (c.op === 'update' ? `${c.op} ${c.count} ${c.lastObservedMs - T0}` : c.op)),
      ['create', 'update 4 3000'],
    );
  });

  it('never throws to the caller and counts a failed create, retrying with a new Event next time', async () => {
    const { recorder, sink, registry } = newRecorder();
    sink.failNext(new ApiException(500, 'boom', '', {}));
    assert.doesNotThrow(() => recorder.event(pod, 'Warning', 'ProbeFailed', 'Probe', 'connection refused'));
    await recorder.flush();
    assert.equal(await failedTotal(registry, 'create'), 1);
    recorder.event(pod, 'Warning', 'ProbeFailed', 'Probe', 'connection refused');
    await recorder.flush();
    assert.deepEqual(sink.calls.map((c) => c.op), ['create', 'create']);
  });

  it('counts a failed series update and sends the then-current count with the next repeat', async () => {
    const { recorder, sink, registry, clock } = newRecorder();
    recorder.event(pod, 'Warning', 'ProbeFailed', 'Probe', 'x');
    await recorder.flush();
    sink.failNext(new ApiException(503, 'unavailable', '', {}));
    clock.advance(1_000);
    recorder.event(pod, 'Warning', 'ProbeFailed', 'Probe', 'x');
    await recorder.flush();
    clock.advance(1_000);
    recorder.event(pod, 'Warning', 'ProbeFailed', 'Probe', 'x');
    await recorder.flush();
    assert.equal(await failedTotal(registry, 'update'), 1);
    assert.deepEqual(sink.calls.map((c) => (c.op === 'update' ? c.count : c.op)), ['create', 2, 3]);
  });

  it('recreates an Event that expired on the server, carrying its series', async () => {
    const { recorder, sink, clock, registry } = newRecorder();
    recorder.event(pod, 'Warning', 'ProbeFailed', 'Probe', 'x');
    await recorder.flush();
    sink.failNext(new ApiException(404, 'gone', JSON.stringify({ kind: 'Status', code: 404, reason: 'NotFound' }), {}));
    clock.advance(MINUTE_MS);
    recorder.event(pod, 'Warning', 'ProbeFailed', 'Probe', 'x');
    await recorder.flush();
    const [first, , recreated] = sink.calls;
    assert.deepEqual(sink.calls.map((c) => c.op), ['create', 'update', 'create']);
    assert.equal(recreated?.op === 'create' && recreated.event.metadata?.name, first?.op === 'create' && first.event.metadata?.name);
    assert.deepEqual(recreated?.op === 'create' && recreated.event.series, { count: 2, lastObservedTime: '2023-11-14T22:14:20.000000Z' });
    assert.equal(await failedTotal(registry, 'update'), 0);
  });

  it('bounds the number of series it remembers', async () => {
    const clock = new FakeClock(T0);
    const recorder = new EventRecorder({ sink: new FakeSink(), reportingInstance: 'i', clock, maxSeries: 3 });
    for (let i = 0; i < 10; i++) recorder.event({ ...pod, name: `web-${i}` }, 'Normal', 'Seen', 'Observe', 'n');
    await recorder.flush();
    assert.equal(recorder.trackedSeries, 3);
  });
});

describe('eventsApiSink', () => {
  it('creates in the Event namespace and updates the series with a JSON patch carrying a MicroTime', async () => {
    const requests: Array<{ path: string; init: unknown }> = [];
    const api: EventsApi = {
      json: async <T>(path: string, init: unknown): Promise<T> => {
        requests.push({ path, init });
        return {} as T;
      },
    };
    const sink = eventsApiSink(api);
    const event: EventObject = { metadata: { namespace: 'team-a', name: 'web-0.1' }, eventTime: '2023-11-14T22:13:20.000000Z' };
    await sink.create(event);
    await sink.updateSeries('team-a', 'web-0.1', { count: 5, lastObservedMs: T0 });
    assert.deepEqual(requests[0], { path: '/apis/events.k8s.io/v1/namespaces/team-a/events', init: { method: 'POST', body: event } });
    assert.deepEqual(requests[1], {
      path: '/apis/events.k8s.io/v1/namespaces/team-a/events/web-0.1',
      init: {
        method: 'PATCH',
        contentType: 'application/json-patch+json',
        body: [{ op: 'add', path: '/series', value: { count: 5, lastObservedTime: '2023-11-14T22:13:20.000000Z' } }],
      },
    });
  });
});
