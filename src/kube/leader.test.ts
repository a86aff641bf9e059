import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { ApiException } from '@kubernetes/client-node';
import { Registry } from 'prom-client';
import { FakeClock } from './clock.ts';
import {
  decide,
  jitteredRetryDelayMs,
  LeaderElector,
  leaseSpecFromRecord,
  observe,
  recordFromLease,
  releasedRecord,
  validateLeaderElectionConfig,
  type LeaderCallbacks,
  type LeaderElectionRecord,
  type Lease,
  type LeaseApi,
  type LeaseRef,
  type Observation,
} from './leader.ts';
import { LABEL_MANAGED_BY } from './labels.ts';

const T0 = 1_700_000_000_000;
const TIMING = { leaseDurationMs: 15_000, renewDeadlineMs: 10_000, retryPeriodMs: 2_000 };

function held(holderIdentity: string, overrides: Partial<LeaderElectionRecord> = {}): LeaderElectionRecord {
  return { holderIdentity, leaseDurationSeconds: 15, acquireTimeMs: T0 - 60_000, renewTimeMs: T0 - 1_000, leaseTransitions: 3, ...overrides };
}

describe('validateLeaderElectionConfig', () => {
  const valid = { namespace: 'crowsnest', name: 'operator', identity: 'pod-a', ...TIMING };
  const cases: ReadonlyArray<{ name: string; change: Partial<typeof valid>; error: RegExp | undefined }> = [
    { name: 'accepts the client-go defaults', change: {}, error: undefined },
    { name: 'rejects a lease duration not above the renew deadline', change: { leaseDurationMs: 10_000 }, error: /leaseDurationMs \(10000\) must be greater than renewDeadlineMs \(10000\)/ },
    { name: 'rejects a renew deadline not above retry period × 1.2', change: { renewDeadlineMs: 2_400 }, error: /renewDeadlineMs \(2400\) must be greater than retryPeriodMs × 1.2/ },
    { name: 'accepts a renew deadline just above retry period × 1.2', change: { renewDeadlineMs: 2_401 }, error: undefined },
    { name: 'rejects a zero retry period', change: { retryPeriodMs: 0 }, error: /retryPeriodMs must be greater than zero/ },
    { name: 'rejects a lease duration of a fractional number of seconds', change: { leaseDurationMs: 15_500 }, error: /whole number of seconds/ },
    { name: 'rejects an empty identity', change: { identity: '' }, error: /identity must be a non-empty string/ },
    { name: 'rejects an empty lease name', change: { name: '' }, error: /name must be a non-empty string/ },
  ];
  for (const c of cases) {
    it(c.name, () => {
      const config = { ...valid, ...c.change };
      if (c.error) assert.throws(() => validateLeaderElectionConfig(config), c.error);
      else assert.doesNotThrow(() => validateLeaderElectionConfig(config));
    });
  }

  it('is applied by the LeaderElector constructor', () => {
    assert.throws(
      () => new LeaderElector({ leaseApi: new FakeLeaseServer(), namespace: 'ns', name: 'l', identity: 'a', leaseDurationMs: 5_000 }),
      /leaseDurationMs \(5000\) must be greater than renewDeadlineMs \(10000\)/,
    );
  });
});

describe('decide', () => {
  const observedAt = (record: LeaderElectionRecord, observedAtMs: number): Observation => ({ record, observedAtMs });

  it('creates the lease with us as holder when there is none', () => {
    assert.deepEqual(decide(undefined, T0, 'a', TIMING), {
      action: 'create',
      record: { holderIdentity: 'a', leaseDurationSeconds: 15, acquireTimeMs: T0, renewTimeMs: T0, leaseTransitions: 0 },
    });
  });

  it('waits while another holder has not been silent for its lease duration', () => {
    assert.deepEqual(decide(observedAt(held('b'), T0), T0 + 14_999, 'a', TIMING), { action: 'wait', holder: 'b', expiresAtMs: T0 + 15_000 });
  });

  it('takes over once the lease duration passed since we saw the holder last change it, counting a transition', () => {
    assert.deepEqual(decide(observedAt(held('b'), T0), T0 + 15_000, 'a', TIMING), {
      action: 'acquire',
      previousHolder: 'b',
      record: { holderIdentity: 'a', leaseDurationSeconds: 15, acquireTimeMs: T0 + 15_000, renewTimeMs: T0 + 15_000, leaseTransitions: 4 },
    });
  });

  it('measures expiry from our observation, not the remote renewTime, so a skewed holder clock cannot expire a live lease', () => {
    const skewed = held('b', { renewTimeMs: T0 - 3_600_000 });
    assert.equal(decide(observedAt(skewed, T0), T0 + 1_000, 'a', TIMING).action, 'wait');
  });

  it("honours the holder's own lease duration rather than ours", () => {
    const long = held('b', { leaseDurationSeconds: 60 });
    assert.equal(decide(observedAt(long, T0), T0 + 30_000, 'a', TIMING).action, 'wait');
    assert.equal(decide(observedAt(long, T0), T0 + 60_000, 'a', TIMING).action, 'acquire');
  });

  it('takes a released lease (no holder) at once', () => {
    const released = releasedRecord(held('b'), T0);
    assert.equal(released.leaseDurationSeconds, 1);
    const decision = decide(observedAt(released, T0), T0, 'a', TIMING);
    assert.equal(decision.action, 'acquire');
    assert.equal(decision.action === 'acquire' && decision.record.leaseTransitions, 4);
  });

  it('renews our own lease keeping acquireTime and transitions, even after it expired', () => {
    for (const nowMs of [T0 + 1_000, T0 + 60_000]) {
      assert.deepEqual(decide(observedAt(held('a'), T0), nowMs, 'a', TIMING), {
        action: 'renew',
        record: { ...held('a'), renewTimeMs: nowMs },
      });
    }
  });
});

describe('observe', () => {
  it('keeps the first observation time while the record does not change', () => {
    const first = observe(undefined, held('b'), T0);
    const again = observe(first, held('b'), T0 + 10_000);
    assert.equal(again.observedAtMs, T0);
  });

  it('restarts the observation time when the holder renews', () => {
    const first = observe(undefined, held('b'), T0);
    const renewed = observe(first, held('b', { renewTimeMs: T0 + 2_000 }), T0 + 10_000);
    assert.equal(renewed.observedAtMs, T0 + 10_000);
  });
});

describe('Lease record conversion', () => {
  it('reads the RFC 3339 microsecond strings the server sends, and Dates', () => {
    const lease = {
      spec: {
        holderIdentity: 'b',
        leaseDurationSeconds: 15,
        acquireTime: '2023-11-14T22:13:20.123456Z',
        renewTime: new Date(T0),
        leaseTransitions: 2,
      },
    } as unknown as Lease;
    assert.deepEqual(recordFromLease(lease), {
      holderIdentity: 'b',
      leaseDurationSeconds: 15,
      acquireTimeMs: Date.parse('2023-11-14T22:13:20.123Z'),
      renewTimeMs: T0,
      leaseTransitions: 2,
    });
  });

  it('treats a Lease without a spec as free and expired', () => {
    assert.deepEqual(recordFromLease({}), {
      holderIdentity: '',
      leaseDurationSeconds: 0,
      acquireTimeMs: undefined,
      renewTimeMs: undefined,
      leaseTransitions: 0,
    });
  });

  it('writes times with the six fractional digits the API server requires of MicroTime', () => {
    const spec = leaseSpecFromRecord(held('a', { renewTimeMs: Date.parse('2023-11-14T22:13:20.123Z') }));
    assert.equal(spec.renewTime, '2023-11-14T22:13:20.123000Z');
  });
});

describe('jitteredRetryDelayMs', () => {
  it('waits between one and 2.2 retry periods, like client-go JitterUntil with factor 1.2', () => {
    assert.equal(jitteredRetryDelayMs(2_000, () => 0), 2_000);
    assert.equal(jitteredRetryDelayMs(2_000, () => 0.5), 3_200);
    assert.ok(jitteredRetryDelayMs(2_000, () => 0.999_999) < 4_400);
  });
});

// ---------------------------------------------------------------------------------------------
// The elector against an in-memory Lease with API-server concurrency semantics

/** `lost-response`: the write is applied but its answer never arrives. */
type Failure = 'none' | 'unavailable' | 'hang' | 'lost-response';

function apiError(code: number, reason: string): ApiException<string> {
  return new ApiException(code, reason, JSON.stringify({ kind: 'Status', code, reason }), {});
}

/** One Lease with resourceVersion checks, serialized through JSON like the wire would. */
class FakeLeaseServer implements LeaseApi {
  lease: Lease | undefined;
  failure: Failure = 'none';
  readonly calls: string[] = [];
  private version = 0;

  /** Overwrites the Lease as another client would (bumps resourceVersion). */
  write(spec: Lease['spec']): void {
    this.lease = this.stored({ apiVersion: 'coordination.k8s.io/v1', kind: 'Lease', metadata: { name: 'operator', namespace: 'ns' }, spec });
  }

  get record(): LeaderElectionRecord | undefined {
    return this.lease && recordFromLease(this.lease);
  }

  async read(_ref: LeaseRef): Promise<Lease> {
    await this.respond('read');
    if (!this.lease) throw apiError(404, 'NotFound');
    return structuredClone(this.lease);
  }

  async create(_ref: LeaseRef, body: Lease): Promise<Lease> {
    await this.respond('create');
    if (this.lease) throw apiError(409, 'AlreadyExists');
    this.lease = this.stored(body);
    return structuredClone(this.lease);
  }

  async replace(_ref: LeaseRef, body: Lease): Promise<Lease> {
    await this.respond('replace');
    if (!this.lease) throw apiError(404, 'NotFound');
    if (body.metadata?.resourceVersion !== this.lease.metadata?.resourceVersion) throw apiError(409, 'Conflict');
    this.lease = this.stored(body);
    if (this.failure === 'lost-response') await new Promise(() => undefined);
    return structuredClone(this.lease);
  }

  private stored(body: Lease): Lease {
    const wire = JSON.parse(JSON.stringify(body)) as Lease;
    return { ...wire, metadata: { ...wire.metadata, resourceVersion: String(++this.version) } };
  }

  private async respond(call: string): Promise<void> {
    this.calls.push(call);
    if (this.failure === 'unavailable') throw apiError(503, 'ServiceUnavailable');
    if (this.failure === 'hang') await new Promise(() => undefined);
  }
}

/** Lets promise continuations and immediates run; no wall-clock time passes. */
async function settle(): Promise<void> {
  for (let i = 0; i < 20; i++) await new Promise((resolve) => setImmediate(resolve));
}

/** Moves the fake clock forward in small steps, letting the elector react between them. */
async function advance(clock: FakeClock, totalMs: number, stepMs = 100): Promise<void> {
  for (let done = 0; done < totalMs; done += stepMs) {
    clock.advance(Math.min(stepMs, totalMs - done));
    await settle();
  }
}

async function masterStatus(registry: Registry): Promise<number | undefined> {
  const metric = registry.getSingleMetric('crowsnest_leader_election_master_status');
  const values = (await metric?.get())?.values ?? [];
  return values.find((v) => v.labels['name'] === 'operator')?.value;
}

interface Harness {
  readonly clock: FakeClock;
  readonly server: FakeLeaseServer;
  readonly registry: Registry;
  readonly elector: LeaderElector;
  readonly events: string[];
  readonly leaderSignals: AbortSignal[];
  readonly cancel: AbortController;
  readonly done: Promise<void>;
}

function start(
  options: { identity?: string; server?: FakeLeaseServer; clock?: FakeClock; releaseOnCancel?: boolean; onStartedLeading?: LeaderCallbacks['onStartedLeading'] } = {},
): Harness {
  const clock = options.clock ?? new FakeClock(T0);
  const server = options.server ?? new FakeLeaseServer();
  const registry = new Registry();
  const identity = options.identity ?? 'a';
  const elector = new LeaderElector({
    leaseApi: server,
    namespace: 'ns',
    name: 'operator',
    identity,
    clock,
    registry,
    random: () => 0,
    ...(options.releaseOnCancel === undefined ? {} : { releaseOnCancel: options.releaseOnCancel }),
  });
  const events: string[] = [];
  const leaderSignals: AbortSignal[] = [];
  const cancel = new AbortController();
  const done = elector.run(cancel.signal, {
    onStartedLeading: (signal) => {
      events.push('started');
      leaderSignals.push(signal);
      return options.onStartedLeading?.(signal);
    },
    onStoppedLeading: () => events.push('stopped'),
    onNewLeader: (leader) => events.push(`leader:${leader}`),
  });
  return { clock, server, registry, elector, events, leaderSignals, cancel, done };
}

describe('LeaderElector', () => {
  it('creates the Lease and starts leading when none exists', async () => {
    const h = start();
    await settle();
    assert.equal(h.elector.isLeader(), true);
    assert.deepEqual(h.events, ['leader:a', 'started']);
    assert.deepEqual(h.server.record, { holderIdentity: 'a', leaseDurationSeconds: 15, acquireTimeMs: T0, renewTimeMs: T0, leaseTransitions: 0 });
    assert.equal(h.server.lease?.metadata?.labels?.[LABEL_MANAGED_BY], 'crowsnest');
    assert.equal(await masterStatus(h.registry), 1);
    h.cancel.abort();
    await h.done;
  });

  it("waits out another holder's lease on its own clock, then takes over with one more transition", async () => {
    const server = new FakeLeaseServer();
    // The remote renewTime is an hour old; only our own observation may start the expiry countdown.
    server.write(leaseSpecFromRecord(held('b', { renewTimeMs: T0 - 3_600_000 })));
    const h = start({ server });
    await settle();
    assert.deepEqual(h.events, ['leader:b']);
    await advance(h.clock, 14_000);
    assert.equal(h.elector.isLeader(), false);
    assert.equal(await masterStatus(h.registry), 0);
    await advance(h.clock, 2_000);
    assert.equal(h.elector.isLeader(), true);
    assert.deepEqual(h.events, ['leader:b', 'leader:a', 'started']);
    assert.equal(h.server.record?.leaseTransitions, 4);
    assert.equal(h.server.record?.acquireTimeMs, T0 + 16_000);
    h.cancel.abort();
    await h.done;
  });

  it('renews every retry period while leading', async () => {
    const h = start();
    await settle();
    await advance(h.clock, 2_000);
    assert.equal(h.server.record?.renewTimeMs, T0 + 2_000);
    await advance(h.clock, 2_000);
    assert.equal(h.server.record?.renewTimeMs, T0 + 4_000);
    assert.equal(h.server.record?.acquireTimeMs, T0);
    // The fast path writes over the Lease our last write returned: no read per renewal.
    assert.deepEqual(h.server.calls, ['read', 'create', 'replace', 'replace']);
    h.cancel.abort();
    await h.done;
  });

  for (const failure of ['unavailable', 'hang'] as const) {
    it(`steps down when no renewal succeeds within the renew deadline (API ${failure})`, async () => {
      const h = start();
      await settle();
      h.server.failure = failure;
      await advance(h.clock, 9_900);
      assert.equal(h.elector.isLeader(), true, 'still inside the renew deadline');
      await advance(h.clock, 200);
      assert.equal(h.elector.isLeader(), false);
      assert.equal(h.leaderSignals[0]?.aborted, true);
      assert.deepEqual(h.events, ['leader:a', 'started', 'stopped']);
      assert.equal(await masterStatus(h.registry), 0);
      await h.done;
    });
  }

  it('steps down at the next renewal when another replica has taken the lease', async () => {
    const h = start();
    await settle();
    h.server.write(leaseSpecFromRecord(held('b')));
    await advance(h.clock, 2_000);
    assert.equal(h.elector.isLeader(), false);
    assert.deepEqual(h.events, ['leader:a', 'started', 'leader:b', 'stopped']);
    await h.done;
    assert.equal(h.server.record?.holderIdentity, 'b', 'a lost lease is not released');
  });

  it('releases the lease on cancellation after the leader work has wound down', async () => {
    const h = start({
      onStartedLeading: async (signal) => {
        await new Promise((resolve) => signal.addEventListener('abort', resolve));
        await settle();
        h.events.push(`work done, holder ${h.server.record?.holderIdentity}`);
      },
    });
    await settle();
    h.cancel.abort();
    await h.done;
    assert.deepEqual(h.events, ['leader:a', 'started', 'work done, holder a', 'stopped']);
    assert.equal(h.server.record?.holderIdentity, '');
    assert.equal(h.server.record?.leaseDurationSeconds, 1);
    assert.equal(h.server.record?.leaseTransitions, 0);
  });

  it('does not release the lease while leader work ignores the stop signal past the renew deadline', async () => {
    const h = start({ onStartedLeading: () => new Promise<void>(() => undefined) });
    await settle();
    h.cancel.abort();
    await advance(h.clock, 9_900);
    assert.deepEqual(h.events, ['leader:a', 'started'], 'still waiting for the leader work');
    await advance(h.clock, 200);
    await h.done;
    assert.deepEqual(h.events, ['leader:a', 'started', 'stopped']);
    assert.equal(h.server.record?.holderIdentity, 'a', 'left to expire so the successor cannot start beside us');
  });

  it('still releases after cancelling a renewal that landed on the server unanswered', async () => {
    const h = start();
    await settle();
    h.server.failure = 'lost-response';
    await advance(h.clock, 2_000);
    assert.equal(h.server.record?.renewTimeMs, T0 + 2_000, 'the renewal was applied');
    h.server.failure = 'none';
    h.cancel.abort();
    await h.done;
    assert.equal(h.server.record?.holderIdentity, '');
  });

  it('lets a successor take a released lease at its next attempt instead of waiting out the lease duration', async () => {
    const clock = new FakeClock(T0);
    const server = new FakeLeaseServer();
    const first = start({ server, clock, identity: 'a' });
    await settle();
    const second = start({ server, clock, identity: 'b' });
    await settle();
    first.cancel.abort();
    await first.done;
    await advance(clock, 2_000);
    assert.equal(second.elector.isLeader(), true);
    assert.equal(server.record?.holderIdentity, 'b');
    assert.equal(server.record?.leaseTransitions, 1);
    second.cancel.abort();
    await second.done;
  });

  it('keeps the lease on cancellation when releaseOnCancel is false', async () => {
    const h = start({ releaseOnCancel: false });
    await settle();
    h.cancel.abort();
    await h.done;
    assert.equal(h.server.record?.holderIdentity, 'a');
    assert.deepEqual(h.events, ['leader:a', 'started', 'stopped']);
  });

  it('returns without calling back when cancelled before winning the lease', async () => {
    const server = new FakeLeaseServer();
    server.write(leaseSpecFromRecord(held('b')));
    const h = start({ server });
    await settle();
    h.cancel.abort();
    await h.done;
    assert.deepEqual(h.events, ['leader:b']);
    assert.equal(h.server.record?.holderIdentity, 'b');
  });

  it('steps down, releases and rejects run when onStartedLeading fails', async () => {
    const h = start({
      onStartedLeading: () => {
        throw new Error('controllers failed to start');
      },
    });
    await assert.rejects(h.done, /controllers failed to start/);
    assert.deepEqual(h.events, ['leader:a', 'started', 'stopped']);
    assert.equal(h.server.record?.holderIdentity, '');
  });

  it('lets exactly one of two simultaneous candidates lead', async () => {
    const clock = new FakeClock(T0);
    const server = new FakeLeaseServer();
    const a = start({ server, clock, identity: 'a' });
    const b = start({ server, clock, identity: 'b' });
    await settle();
    await advance(clock, 6_000);
    assert.equal([a.elector.isLeader(), b.elector.isLeader()].filter(Boolean).length, 1);
    assert.equal(server.record?.holderIdentity, a.elector.isLeader() ? 'a' : 'b');
    a.cancel.abort();
    b.cancel.abort();
    await Promise.all([a.done, b.done]);
  });

  it('refuses to run twice', async () => {
    const h = start();
    await settle();
    await assert.rejects(h.elector.run(new AbortController().signal, { onStartedLeading() {}, onStoppedLeading() {} }), /only once/);
    h.cancel.abort();
    await h.done;
  });
});
