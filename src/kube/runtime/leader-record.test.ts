import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import {
  decide,
  jitteredRetryDelayMs,
  type LeaderElectionRecord,
  leaderHealth,
  type Lease,
  leaseSpecFromRecord,
  type Observation,
  observe,
  recordFromLease,
  releasedRecord,
  validateLeaderElectionConfig,
} from './leader-record.ts';

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

describe('leaderHealth', () => {
  const LEASE = 15_000;
  const TOLERANCE = 20_000;

  it('is healthy while not leading, however long ago anything was renewed', () => {
    assert.equal(leaderHealth({ leading: false, lastRenewMs: 0 }, T0, LEASE, TOLERANCE), undefined);
  });

  it('is healthy while leading and renewed within lease duration + tolerance', () => {
    assert.equal(leaderHealth({ leading: true, lastRenewMs: T0 }, T0 + LEASE + TOLERANCE, LEASE, TOLERANCE), undefined);
  });

  it('fails once a leader has not renewed for longer than lease duration + tolerance, saying for how long', () => {
    const reason = leaderHealth({ leading: true, lastRenewMs: T0 }, T0 + LEASE + TOLERANCE + 1, LEASE, TOLERANCE);
    assert.match(reason ?? '', /last renewed 35001 ms ago \(lease duration 15000 ms \+ tolerance 20000 ms\)/);
  });
});
