import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import type { SyncResponse } from './contract.ts';
import { ArrayCache, injectedPod, storedProber } from './fixtures.ts';
import { PeerDirectory, probeSettings, ReachabilityReports } from './peers.ts';
import { NeighbourRing } from './ring.ts';

function changed(answer: ReturnType<PeerDirectory['answer']>): Extract<SyncResponse, { changed: true }> {
  assert.equal(answer.status, 200, JSON.stringify(answer));
  if (answer.status !== 200 || !answer.response.changed) throw new Error(`expected new peers: ${JSON.stringify(answer)}`);
  return answer.response;
}

function shop(n: number, neighbours = 3): ArrayCache {
  const cache = new ArrayCache();
  cache.probers = [storedProber('mesh', 'shop', { podSelector: { matchLabels: { app: 'web' } }, neighbours, pollingPeriod: '5s', timeout: '250ms' })];
  cache.pods = Array.from({ length: n }, (_, i) => injectedPod(`web-${i}`, 'shop', 'mesh', { node: `node-${i % 2}` }));
  return cache;
}

describe('PeerDirectory.answer', () => {
  it('gives a member its ring neighbours and the prober\'s settings; the ring covers everyone', () => {
    const cache = shop(10);
    const directory = new PeerDirectory(cache);
    const probedBy = new Map<string, number>();
    for (const pod of cache.pods) {
      const response = changed(directory.answer('shop', pod.metadata.name, pod.metadata.uid, { version: '', results: [] }, true));
      assert.equal(response.peers.length, 3);
      assert.ok(!response.peers.some((p) => p.uid === pod.metadata.uid));
      assert.deepEqual(response.settings, { pollingPeriodMs: 5_000, timeoutMs: 250 });
      assert.equal(response.reportAccepted, true);
      for (const peer of response.peers) probedBy.set(peer.name, (probedBy.get(peer.name) ?? 0) + 1);
      const first = response.peers[0]!;
      assert.deepEqual(Object.keys(first).sort(), ['ip', 'name', 'node', 'port', 'uid']);
      assert.equal(first.port, 19080);
    }
    assert.deepEqual([...probedBy.values()], Array(10).fill(3), 'each pod probed by three others');
  });

  it('answers "unchanged" to an agent holding the current version, on any replica', () => {
    const cache = shop(5);
    const first = changed(new PeerDirectory(cache).answer('shop', 'web-1', 'uid-web-1', { version: '', results: [] }, true));
    const otherReplica = new PeerDirectory(cache).answer('shop', 'web-1', 'uid-web-1', { version: first.version, results: [] }, false);
    assert.deepEqual(otherReplica, { status: 200, proberKey: 'shop/mesh', response: { version: first.version, changed: false, reportAccepted: false, syncAfterMs: 5_000 } });
  });

  it('sees pods that came, once their namespace is invalidated, and a changed spec at once', () => {
    const cache = shop(2, 10);
    const directory = new PeerDirectory(cache);
    assert.equal(changed(directory.answer('shop', 'web-0', 'uid-web-0', { version: '', results: [] }, true)).peers.length, 1);
    cache.pods.push(injectedPod('web-2', 'shop', 'mesh'));
    assert.equal(changed(directory.answer('shop', 'web-0', 'uid-web-0', { version: '', results: [] }, true)).peers.length, 1, 'the cached ring until told');
    directory.invalidate('shop');
    assert.equal(changed(directory.answer('shop', 'web-0', 'uid-web-0', { version: '', results: [] }, true)).peers.length, 2);
    cache.probers = [storedProber('mesh', 'shop', { podSelector: { matchLabels: { app: 'web' } }, neighbours: 1 }, 2)];
    assert.equal(changed(directory.answer('shop', 'web-0', 'uid-web-0', { version: '', results: [] }, true)).peers.length, 1, 'a new generation rebuilds the ring');
  });

  it('leaves out pods that are not members: pending, without IP, deleting, deselected, of another prober or namespace', () => {
    const cache = shop(1, 10);
    cache.pods.push(
      injectedPod('pending', 'shop', 'mesh', { phase: 'Pending', ip: '' }),
      injectedPod('deleting', 'shop', 'mesh', { deleting: true }),
      injectedPod('other-app', 'shop', 'mesh', { labels: { app: 'db' } }),
      injectedPod('other-prober', 'shop', 'else'),
      injectedPod('other-ns', 'billing', 'mesh'),
      injectedPod('web-9', 'shop', 'mesh'),
    );
    const peers = changed(new PeerDirectory(cache).answer('shop', 'web-0', 'uid-web-0', { version: '', results: [] }, true)).peers;
    assert.deepEqual(peers.map((p) => p.name), ['web-9']);
  });

  it('tells an agent why it gets nothing', () => {
    const cache = shop(2);
    cache.pods.push(injectedPod('pending', 'shop', 'mesh', { phase: 'Pending', ip: '' }), injectedPod('db', 'shop', 'mesh', { labels: { app: 'db' } }), injectedPod('orphan', 'shop', 'gone'));
    const directory = new PeerDirectory(cache);
    const pending = directory.answer('shop', 'pending', 'uid-pending', { version: '', results: [] }, true);
    assert.equal(pending.status === 200 && pending.response.changed && pending.response.peers.length, 0);
    assert.equal(pending.status === 200 && pending.response.syncAfterMs, 1_000, 'soon again');
    assert.deepEqual(directory.answer('shop', 'db', 'uid-db', { version: '', results: [] }, true), { status: 403, message: 'pod shop/db is no longer selected by NetworkProber shop/mesh' });
    assert.deepEqual(directory.answer('shop', 'orphan', 'uid-orphan', { version: '', results: [] }, true), { status: 403, message: 'NetworkProber shop/gone no longer exists' });
    assert.equal(directory.answer('shop', 'unknown', 'uid-x', { version: '', results: [] }, true).status, 503);
    assert.equal(directory.answer('shop', 'web-0', 'uid-of-an-older-web-0', { version: '', results: [] }, true).status, 503, 'a recreated pod of the same name is not the one in the token');
  });
});

describe('probeSettings', () => {
  it('reads the spec\'s durations in milliseconds', () => {
    assert.deepEqual(probeSettings(storedProber('p', 'ns', { podSelector: {}, pollingPeriod: '1m30s', timeout: '1.5s' })), { pollingPeriodMs: 90_000, timeoutMs: 1_500 });
    assert.deepEqual(probeSettings(storedProber('p', 'ns', { podSelector: {} })), { pollingPeriodMs: 10_000, timeoutMs: 1_000 });
  });
});

describe('ReachabilityReports', () => {
  const members = ['a', 'b', 'c', 'd'].map((n) => ({ name: n, uid: n, ip: '198.18.0.1', node: 'x', port: 1 }));
  const ring = new NeighbourRing(members);

  it('counts the pairs of the ring by the sources\' latest reports', () => {
    const reports = new ReachabilityReports();
    for (const source of members) {
      const results = ring.peersOf(source.uid, 2).map((peer) => ({ uid: peer.uid, reachable: !(source.name === 'a'), ...(source.name === 'a' ? { reason: 'timeout' } : {}) }));
      reports.record('ns/p', source.uid, results, 1_000);
    }
    const summary = reports.summarize('ns/p', ring, 2, 2_000);
    assert.deepEqual({ ...summary, examples: summary.examples.length }, { reachable: 6, unreachable: 2, unknown: 0, reportingMembers: 4, examples: 2 });
    assert.match(summary.examples[0]!, /^a → [bcd] \(timeout\)$/);
  });

  it('ignores stale reports and results about pods no longer probed, and drops reports of pods that left', () => {
    const reports = new ReachabilityReports();
    reports.record('ns/p', 'a', ring.peersOf('a', 1).map((p) => ({ uid: p.uid, reachable: true })), 0);
    reports.record('ns/p', 'b', [{ uid: 'somebody-else', reachable: false }], 25_000);
    reports.record('ns/p', 'gone', [{ uid: 'a', reachable: false }], 25_000);
    const summary = reports.summarize('ns/p', ring, 1, 40_000);
    assert.deepEqual(summary, { reachable: 0, unreachable: 0, unknown: 4, reportingMembers: 1, examples: [] });
    reports.record('ns/p', 'a', ring.peersOf('a', 1).map((p) => ({ uid: p.uid, reachable: true })), 40_000);
    assert.equal(reports.summarize('ns/p', ring, 1, 40_000).reachable, 1);
  });
});
