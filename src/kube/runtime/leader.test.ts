import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { ApiException } from '@kubernetes/client-node';
import { Registry } from 'prom-client';
import { FakeClock } from '../clock.ts';
import { LeaderElector, type LeaderCallbacks, type LeaseApi, type LeaseRef } from './leader.ts';
import { type LeaderElectionRecord, type Lease, leaseSpecFromRecord, recordFromLease } from './leader-record.ts';
import { LABEL_MANAGED_BY } from '../objects/labels.ts';

const T0 = 1_700_000_000_000;

function held(holderIdentity: string, overrides: Partial<LeaderElectionRecord> = {}): LeaderElectionRecord {
  return { holderIdentity, leaseDurationSeconds: 15, acquireTimeMs: T0 - 60_000, renewTimeMs: T0 - 1_000, leaseTransitions: 3, ...overrides };
}

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
  it('validates its timings like validateLeaderElectionConfig', () => {
    assert.throws(
      () => new LeaderElector({ leaseApi: new FakeLeaseServer(), namespace: 'ns', name: 'l', identity: 'a', leaseDurationMs: 5_000 }),
      /leaseDurationMs \(5000\) must be greater than renewDeadlineMs \(10000\)/,
    );
  });

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

  it('fails its health check when it believes it leads but has not renewed within lease duration + tolerance', async () => {
    // A clock whose time can jump while its timers do not fire: what a replica sees after its
    // event loop was stuck (or a renewal hung past every deadline) and came back.
    const timers = new FakeClock(T0);
    let jumpMs = 0;
    const clock = { now: () => timers.now() + jumpMs, setTimer: timers.setTimer.bind(timers), clearTimer: timers.clearTimer.bind(timers) };
    const elector = new LeaderElector({ leaseApi: new FakeLeaseServer(), namespace: 'ns', name: 'operator', identity: 'a', clock, random: () => 0 });
    const cancel = new AbortController();
    let leading = false;
    const done = elector.run(cancel.signal, { onStartedLeading: () => { leading = true; }, onStoppedLeading: () => {} });
    await settle();
    assert.equal(leading, true);
    assert.doesNotThrow(() => elector.check(20_000), 'healthy right after acquiring');
    jumpMs = 15_000 + 20_000;
    assert.doesNotThrow(() => elector.check(20_000), 'healthy up to lease duration + tolerance');
    jumpMs += 1;
    assert.throws(() => elector.check(20_000), /leading but the lease was last renewed 35001 ms ago/);
    jumpMs = 0;
    cancel.abort();
    await advance(timers, 1_000);
    await done;
    assert.doesNotThrow(() => elector.check(0), 'a replica that stopped leading is healthy');
  });
});
