import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { FakeClock } from '../../kube/clock.ts';
import type { Peer } from '../contract.ts';
import { ProbeScheduler } from './schedule.ts';

const peer = (i: number): Peer => ({ name: `web-${i}`, uid: `uid-${i}`, ip: `198.18.0.${i}`, node: 'n', port: 19080 });
const settings = { pollingPeriodMs: 10_000, timeoutMs: 1_000 };

/** Lets promise callbacks run (round completions) after the fake clock fired timers. */
const flush = async (): Promise<void> => {
  for (let i = 0; i < 5; i++) await Promise.resolve();
};

/** A deterministic random sequence cycling through `values`. */
function sequence(...values: number[]): () => number {
  let i = 0;
  return () => values[i++ % values.length]!;
}

function recorder(clock: FakeClock, roundMs = 0) {
  const rounds: Array<{ peer: string; at: number }> = [];
  let active = 0;
  let maxActivePerPeer = 0;
  const activeByPeer = new Map<string, number>();
  const round = async (p: Peer): Promise<void> => {
    rounds.push({ peer: p.name, at: clock.now() });
    active++;
    activeByPeer.set(p.name, (activeByPeer.get(p.name) ?? 0) + 1);
    maxActivePerPeer = Math.max(maxActivePerPeer, activeByPeer.get(p.name)!);
    if (roundMs > 0) await new Promise<void>((resolve) => clock.setTimer(resolve, roundMs));
    active--;
    activeByPeer.set(p.name, activeByPeer.get(p.name)! - 1);
  };
  return { rounds, round, get active() { return active; }, get maxActivePerPeer() { return maxActivePerPeer; } };
}

async function advance(clock: FakeClock, ms: number, step = 100): Promise<void> {
  for (let t = 0; t < ms; t += step) {
    clock.advance(step);
    await flush();
  }
}

describe('ProbeScheduler', () => {
  it('spreads the first rounds over the first period', async () => {
    const clock = new FakeClock(0);
    const r = recorder(clock);
    const scheduler = new ProbeScheduler({ clock, round: r.round, random: sequence(0, 0.25, 0.5, 0.75) });
    scheduler.update([peer(1), peer(2), peer(3), peer(4)], settings);
    await advance(clock, 8_000);
    assert.deepEqual(r.rounds.map((x) => [x.peer, x.at]), [['web-1', 0], ['web-2', 2_500], ['web-3', 5_000], ['web-4', 7_500]]);
  });

  it('probes each peer once per period, every interval jittered within ±15 %', async () => {
    const clock = new FakeClock(0);
    const r = recorder(clock);
    let seed = 7;
    const random = (): number => {
      seed = (seed * 48_271) % 2_147_483_647;
      return seed / 2_147_483_647;
    };
    const scheduler = new ProbeScheduler({ clock, round: r.round, random });
    scheduler.update([peer(1)], settings);
    await advance(clock, 1_000_000, 50);
    const times = r.rounds.map((x) => x.at);
    const intervals = times.slice(1).map((t, i) => t - times[i]!);
    assert.ok(intervals.length > 90);
    assert.ok(intervals.every((d) => d >= 8_500 && d <= 11_500), `intervals ${Math.min(...intervals)}–${Math.max(...intervals)}`);
    assert.ok(Math.max(...intervals) - Math.min(...intervals) > 1_500, 'actually jittered');
    const mean = intervals.reduce((a, b) => a + b, 0) / intervals.length;
    assert.ok(Math.abs(mean - 10_000) < 500, `mean interval ${mean}`);
  });

  it('never runs two rounds of one peer at once: a long round delays the next', async () => {
    const clock = new FakeClock(0);
    const r = recorder(clock, 25_000);
    const scheduler = new ProbeScheduler({ clock, round: r.round, random: () => 0.5 });
    scheduler.update([peer(1)], settings);
    await advance(clock, 100_000);
    assert.equal(r.maxActivePerPeer, 1);
    const times = r.rounds.map((x) => x.at);
    assert.deepEqual(times, [5_000, 30_000, 55_000, 80_000], 'each round starts when the previous ended');
  });

  it('keeps the schedule of peers that stay, starts new ones, and forgets those that leave after their last round', async () => {
    const clock = new FakeClock(0);
    const r = recorder(clock, 500);
    const removed: string[] = [];
    const scheduler = new ProbeScheduler({ clock, round: r.round, random: () => 0.5, onPeerRemoved: (p) => removed.push(p.name) });
    scheduler.update([peer(1), peer(2)], settings);
    await advance(clock, 5_100); // both rounds started at 5 000 and run until 5 500
    assert.equal(r.active, 2);
    scheduler.update([peer(2), peer(3)], settings);
    assert.deepEqual(removed, [], 'web-1 is still in its round');
    await advance(clock, 500);
    assert.deepEqual(removed, ['web-1']);
    const before = r.rounds.length;
    await advance(clock, 30_000);
    const later = r.rounds.slice(before).map((x) => x.peer);
    assert.ok(!later.includes('web-1'));
    assert.ok(later.includes('web-2') && later.includes('web-3'));
    assert.deepEqual(scheduler.peers.map((p) => p.name).sort(), ['web-2', 'web-3']);
  });

  it('treats a pod at a new address as a new peer', async () => {
    const clock = new FakeClock(0);
    const r = recorder(clock);
    const removed: string[] = [];
    const scheduler = new ProbeScheduler({ clock, round: r.round, random: () => 0.5, onPeerRemoved: (p) => removed.push(`${p.name}@${p.ip}`) });
    scheduler.update([peer(1)], settings);
    scheduler.update([{ ...peer(1), ip: '198.18.1.9' }], settings);
    assert.deepEqual(removed, ['web-1@198.18.0.1']);
  });

  it('applies a shorter period at once instead of after the rest of a long one', async () => {
    const clock = new FakeClock(0);
    const r = recorder(clock);
    const scheduler = new ProbeScheduler({ clock, round: r.round, random: () => 0.5 });
    scheduler.update([peer(1)], { pollingPeriodMs: 3_600_000, timeoutMs: 1_000 });
    await advance(clock, 1_000);
    scheduler.update([peer(1)], settings);
    await advance(clock, 20_000);
    assert.ok(r.rounds.length >= 2, `${r.rounds.length} rounds`);
    assert.equal(r.rounds[0]!.at, 6_000);
  });

  it('stops: no timers left, running rounds awaited', async () => {
    const clock = new FakeClock(0);
    const r = recorder(clock, 1_000);
    const scheduler = new ProbeScheduler({ clock, round: r.round, random: () => 0 });
    scheduler.update([peer(1), peer(2)], settings);
    await advance(clock, 100);
    assert.equal(r.active, 2);
    let stopped = false;
    const stopping = scheduler.stop().then(() => { stopped = true; });
    await flush();
    assert.equal(stopped, false);
    await advance(clock, 1_000);
    await stopping;
    assert.equal(clock.pendingTimers, 0);
    scheduler.update([peer(3)], settings);
    assert.equal(clock.pendingTimers, 0, 'no new rounds after stop');
  });
});
