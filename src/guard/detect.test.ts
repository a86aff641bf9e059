import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { OomTracker, RestartTracker } from './detect.ts';
import type { GuardPod, SlimContainerStatus } from './pods.ts';

const MINUTE = 60_000;
const T0 = Date.parse('2026-01-01T00:00:00Z');

function pod(containers: SlimContainerStatus[]): GuardPod {
  return { metadata: { name: 'web-1', namespace: 'shop', uid: 'u1' }, spec: { ports: [] }, status: { containers } };
}
const restarts = (n: number, extra: Partial<SlimContainerStatus> = {}): GuardPod => pod([{ name: 'app', restartCount: n, ready: false, ...extra }]);

describe('RestartTracker', () => {
  it('counts restart deltas inside the window and forgets them after it', () => {
    const tracker = new RestartTracker();
    tracker.observe(restarts(0), T0, 10 * MINUTE);
    tracker.observe(restarts(2), T0 + MINUTE, 10 * MINUTE);
    tracker.observe(restarts(3, { waitingReason: 'CrashLoopBackOff' }), T0 + 2 * MINUTE, 10 * MINUTE);
    assert.equal(tracker.count(T0 + 2 * MINUTE, 10 * MINUTE), 3);
    const finding = tracker.finding(restarts(3, { waitingReason: 'CrashLoopBackOff' }), T0 + 2 * MINUTE, 3, 10 * MINUTE);
    assert.equal(finding?.reason, 'CrashLoop');
    assert.match(finding!.evidence[0]!, /^3 container restarts within 10m \(threshold 3\), in CrashLoopBackOff$/);
    assert.match(finding!.evidence[1]!, /container app: restartCount 3, waiting \(CrashLoopBackOff\)/);
    // Eleven minutes after the first delta, only the last one is in the window.
    tracker.observe(restarts(3), T0 + 11.5 * MINUTE, 10 * MINUTE);
    assert.equal(tracker.count(T0 + 11.5 * MINUTE, 10 * MINUTE), 1);
    assert.equal(tracker.finding(restarts(3), T0 + 11.5 * MINUTE, 3, 10 * MINUTE), undefined);
  });

  it('does not count restarts older than its first look, except the last termination of each container inside the window', () => {
    const tracker = new RestartTracker();
    const seen = pod([
      { name: 'a', restartCount: 40, ready: false, lastTerminated: { reason: 'Error', exitCode: 1, finishedAt: new Date(T0 - 30_000).toISOString() } },
      { name: 'b', restartCount: 7, ready: true, lastTerminated: { reason: 'Error', exitCode: 1, finishedAt: new Date(T0 - 3_600_000).toISOString() } },
    ]);
    assert.equal(tracker.observe(seen, T0, 10 * MINUTE), 1);
    assert.equal(tracker.count(T0, 10 * MINUTE), 1);
  });
});

describe('OomTracker', () => {
  const killed = (containerID: string, finishedAt: number): GuardPod =>
    pod([{ name: 'app', restartCount: 1, ready: false, lastTerminated: { reason: 'OOMKilled', exitCode: 137, containerID, finishedAt: new Date(finishedAt).toISOString() } }]);

  it('counts each kill once, at its finish time', () => {
    const tracker = new OomTracker();
    assert.equal(tracker.observe(killed('c1', T0), T0 + 1000, 30 * MINUTE), 1);
    assert.equal(tracker.observe(killed('c1', T0), T0 + 2000, 30 * MINUTE), 0, 'the same termination seen again');
    assert.equal(tracker.observe(killed('c2', T0 + 5000), T0 + 6000, 30 * MINUTE), 1);
    const finding = tracker.finding(T0 + 6000, 2, 30 * MINUTE);
    assert.equal(finding?.reason, 'OOMKilled');
    assert.match(finding!.evidence.join('\n'), /2 OOM kills within 30m \(threshold 2\)\ncontainer app OOMKilled \(reason OOMKilled, exit code 137/);
  });

  it('ignores terminations for other reasons and kills older than the window', () => {
    const tracker = new OomTracker();
    tracker.observe(pod([{ name: 'app', restartCount: 1, ready: false, lastTerminated: { reason: 'Error', exitCode: 1, finishedAt: new Date(T0).toISOString() } }]), T0, MINUTE);
    tracker.observe(killed('old', T0 - 2 * MINUTE), T0, MINUTE);
    assert.equal(tracker.count(T0, MINUTE), 0);
  });
});
