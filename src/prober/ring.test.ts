import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { NeighbourRing } from './ring.ts';

const members = (n: number, prefix = 'pod'): Array<{ uid: string }> => Array.from({ length: n }, (_, i) => ({ uid: `${prefix}-${i}` }));

function peerSets(ring: NeighbourRing<{ uid: string }>, all: readonly { uid: string }[], neighbours: number): Map<string, string[]> {
  return new Map(all.map((m) => [m.uid, ring.peersOf(m.uid, neighbours).map((p) => p.uid)]));
}

describe('NeighbourRing', () => {
  it('gives each member min(N, n-1) distinct peers, never itself', () => {
    for (const [n, neighbours] of [[1, 10], [2, 10], [5, 3], [50, 10], [11, 10], [10, 10]] as const) {
      const all = members(n);
      const ring = new NeighbourRing(all);
      for (const m of all) {
        const peers = ring.peersOf(m.uid, neighbours).map((p) => p.uid);
        assert.equal(peers.length, Math.min(neighbours, n - 1), `n=${n} N=${neighbours}`);
        assert.equal(new Set(peers).size, peers.length);
        assert.ok(!peers.includes(m.uid));
      }
    }
  });

  it('covers everyone: each member is probed by exactly min(N, n-1) others, and probersOf names them', () => {
    for (const [n, neighbours] of [[3, 1], [50, 3], [200, 10], [7, 100]] as const) {
      const all = members(n);
      const ring = new NeighbourRing(all);
      const probedBy = new Map<string, string[]>();
      for (const [source, dest] of ring.pairs(neighbours)) probedBy.set(dest.uid, [...(probedBy.get(dest.uid) ?? []), source.uid]);
      for (const m of all) {
        assert.equal(probedBy.get(m.uid)?.length ?? 0, Math.min(neighbours, n - 1), `n=${n} N=${neighbours} ${m.uid}`);
        assert.deepEqual(new Set(ring.probersOf(m.uid, neighbours).map((p) => p.uid)), new Set(probedBy.get(m.uid)));
      }
      assert.equal([...ring.pairs(neighbours)].length, n * Math.min(neighbours, n - 1), 'n·N pairs, not n²');
    }
  });

  it('does not depend on the order members are listed in', () => {
    const all = members(30);
    const a = new NeighbourRing(all);
    const b = new NeighbourRing([...all].reverse());
    assert.deepEqual(peerSets(a, all, 5), peerSets(b, all, 5));
  });

  it('a member joining changes the sets of at most N members (those before it), and nobody else\'s', () => {
    const neighbours = 5;
    const all = members(100);
    const before = peerSets(new NeighbourRing(all), all, neighbours);
    const joined = { uid: 'newcomer' };
    const ring = new NeighbourRing([...all, joined]);
    const after = peerSets(ring, all, neighbours);
    const changed = all.filter((m) => JSON.stringify(before.get(m.uid)) !== JSON.stringify(after.get(m.uid))).map((m) => m.uid);
    assert.deepEqual(new Set(changed), new Set(ring.probersOf('newcomer', neighbours).map((p) => p.uid)));
    assert.equal(changed.length, neighbours);
    for (const uid of changed) {
      // Each changed set lost one member and gained the newcomer.
      const gained = after.get(uid)!.filter((p) => !before.get(uid)!.includes(p));
      assert.deepEqual(gained, ['newcomer']);
    }
  });

  it('a member leaving changes the sets of at most N members', () => {
    const neighbours = 4;
    const all = members(60);
    const ring = new NeighbourRing(all);
    const leaving = all[17]!;
    const affected = new Set(ring.probersOf(leaving.uid, neighbours).map((p) => p.uid));
    const rest = all.filter((m) => m !== leaving);
    const before = peerSets(ring, rest, neighbours);
    const after = peerSets(new NeighbourRing(rest), rest, neighbours);
    for (const m of rest) {
      if (!affected.has(m.uid)) assert.deepEqual(after.get(m.uid), before.get(m.uid), m.uid);
    }
  });

  it('spreads similar names: neighbours are not simply the next names in order', () => {
    const all = members(100, 'web-7f9c');
    const ring = new NeighbourRing(all);
    const adjacentByName = all.filter((m, i) => ring.peersOf(m.uid, 1)[0]!.uid === `web-7f9c-${(i + 1) % 100}`).length;
    assert.ok(adjacentByName < 10, `${adjacentByName} of 100 first neighbours are the next name`);
  });

  it('has no peers for a non-member and counts a repeated uid once', () => {
    const ring = new NeighbourRing([{ uid: 'a' }, { uid: 'b' }, { uid: 'a' }]);
    assert.equal(ring.size, 2);
    assert.deepEqual(ring.peersOf('zzz', 3), []);
    assert.deepEqual(ring.peersOf('a', 0), []);
    assert.deepEqual(ring.peersOf('a', 3).map((p) => p.uid), ['b']);
  });
});
