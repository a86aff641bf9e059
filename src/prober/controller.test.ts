import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { Registry } from 'prom-client';
import { FakeClock } from '../kube/clock.ts';
import type { NetworkProber, NetworkProberStatus } from './api.ts';
import { podHandler, proberHandler, ProberStatusReconciler, REFRESH_MS } from './controller.ts';
import { ArrayCache, injectedPod, storedProber } from './fixtures.ts';
import { PeerDirectory, ReachabilityReports } from './peers.ts';

/** Preloaded caches, a status writer and a recorder that record what the controller did. */
function fixture(probers: NetworkProber[], podCount: number) {
  const cache = new ArrayCache();
  cache.probers = probers;
  cache.pods = Array.from({ length: podCount }, (_, i) => injectedPod(`web-${i}`, 'shop', 'mesh'));
  const clock = new FakeClock(Date.parse('2026-03-01T00:00:00Z'));
  const writes: Array<{ name: string; status: NetworkProberStatus }> = [];
  const forgotten: string[] = [];
  const events: Array<{ type: string; reason: string; note: string }> = [];
  const directory = new PeerDirectory(cache);
  const reports = new ReachabilityReports();
  const registry = new Registry();
  const reconciler = new ProberStatusReconciler({
    prober: (ns, name) => cache.prober(ns, name),
    podsIn: (ns) => cache.podsIn(ns),
    directory, reports, clock, registry,
    statusWriter: {
      write: async (obj, status) => {
        writes.push({ name: obj.metadata?.name ?? '', status });
        const stored = cache.probers.find((p) => p.metadata?.name === obj.metadata?.name);
        if (stored) stored.status = status;
        return { written: true, object: obj };
      },
      forget: (uid) => forgotten.push(uid),
    },
    recorder: { event: (_regarding, type, reason, _action, note) => events.push({ type, reason, note }) },
  });
  const reportAll = (reachable: (source: string, dest: string) => boolean): void => {
    const prober = cache.probers[0]!;
    const ring = directory.ring(prober);
    for (const pod of cache.pods) {
      reports.record('shop/mesh', pod.metadata.uid, ring.peersOf(pod.metadata.uid, prober.spec.neighbours ?? 10).map((peer) => ({ uid: peer.uid, reachable: reachable(pod.metadata.name, peer.name), ...(reachable(pod.metadata.name, peer.name) ? {} : { reason: 'timeout' }) })), clock.now());
    }
  };
  return { cache, clock, writes, forgotten, events, directory, reports, registry, reconciler, reportAll };
}

const mesh = () => storedProber('mesh', 'shop', { podSelector: { matchLabels: { app: 'web' } }, neighbours: 2 }, 4);
const signal = new AbortController().signal;
const condition = (status: NetworkProberStatus, type: string) => status.conditions?.find((c) => c.type === type);

describe('NetworkProber controller', () => {
  it('tells the user to restart workloads when no selected pod runs the agent, and refreshes later', async () => {
    const f = fixture([mesh()], 0);
    assert.deepEqual(await f.reconciler.reconcile('shop/mesh', signal), { kind: 'requeueAfter', delayMs: REFRESH_MS });
    const { status } = f.writes[0]!;
    assert.equal(status.injectedPods, 0);
    assert.equal(status.observedGeneration, 4);
    assert.equal(condition(status, 'Ready')?.reason, 'NoAgents');
    assert.deepEqual(f.events, [{ type: 'Normal', reason: 'NoAgents', note: condition(status, 'Ready')!.message }, { type: 'Normal', reason: 'AllPairsReachable', note: 'No probed pair has failed.' }]);
  });

  it('reports injected pods and pair counts from the agents\' reports, Ready once all report', async () => {
    const f = fixture([mesh()], 5);
    f.reportAll(() => true);
    await f.reconciler.reconcile('shop/mesh', signal);
    const { status } = f.writes.at(-1)!;
    assert.deepEqual([status.injectedPods, status.reachablePairs, status.unreachablePairs], [5, 10, 0]);
    assert.equal(condition(status, 'Ready')?.status, 'True');
    assert.equal(condition(status, 'Degraded')?.status, 'False');
    const gauges = (await f.registry.getSingleMetric('crowsnest_prober_pairs')!.get()).values.map((v) => [v.labels['state'], v.value]);
    assert.deepEqual(gauges, [['reachable', 10], ['unreachable', 0]]);
  });

  it('records a Warning when pairs fail, and a Normal Event when they recover, once per change', async () => {
    const f = fixture([mesh()], 4);
    f.reportAll(() => true);
    await f.reconciler.reconcile('shop/mesh', signal);
    f.events.length = 0;
    f.reportAll((_source, dest) => dest !== 'web-2');
    await f.reconciler.reconcile('shop/mesh', signal);
    await f.reconciler.reconcile('shop/mesh', signal);
    assert.deepEqual(f.events.map((e) => [e.type, e.reason]), [['Warning', 'PairsUnreachable']]);
    assert.match(f.events[0]!.note, /^2 of 8 probed pairs fail: web-\d → web-2 \(timeout\), web-\d → web-2 \(timeout\)\.$/);
    assert.equal(condition(f.writes.at(-1)!.status, 'Degraded')?.status, 'True');
    f.reportAll(() => true);
    await f.reconciler.reconcile('shop/mesh', signal);
    assert.deepEqual(f.events.map((e) => [e.type, e.reason]), [['Warning', 'PairsUnreachable'], ['Normal', 'AllPairsReachable']]);
  });

  it('is not Ready when some agents stopped reporting (their reports age out)', async () => {
    const f = fixture([mesh()], 3);
    f.reportAll(() => true);
    f.clock.advance(31_000);
    await f.reconciler.reconcile('shop/mesh', signal);
    const ready = condition(f.writes.at(-1)!.status, 'Ready')!;
    assert.deepEqual([ready.status, ready.reason], ['False', 'AgentsNotReporting']);
    assert.equal(f.writes.at(-1)!.status.reachablePairs, 0, 'stale reports do not count');
  });

  it('forgets a deleted prober: no write, gauges and reports dropped', async () => {
    const f = fixture([mesh()], 2);
    await f.reconciler.reconcile('shop/mesh', signal);
    const uid = f.cache.probers[0]!.metadata!.uid!;
    f.cache.probers = [];
    f.writes.length = 0;
    assert.deepEqual(await f.reconciler.reconcile('shop/mesh', signal), { kind: 'done' });
    assert.deepEqual(f.writes, []);
    assert.deepEqual(f.forgotten, [uid]);
    assert.deepEqual((await f.registry.getSingleMetric('crowsnest_prober_injected_pods')!.get()).values, []);
  });
});

describe('NetworkProber controller handlers', () => {
  it('enqueues a prober on create, spec change and delete, not on its own status writes', () => {
    const keys: string[] = [];
    const handler = proberHandler((k) => keys.push(k));
    const p = mesh();
    handler.onAdd!(p);
    handler.onUpdate!(p, { ...p, status: { injectedPods: 3 } });
    handler.onUpdate!(p, { ...p, metadata: { ...p.metadata, generation: 5 } });
    handler.onDelete!(p, false);
    assert.deepEqual(keys, ['shop/mesh', 'shop/mesh', 'shop/mesh']);
  });

  it('enqueues the injecting prober and rebuilds the namespace\'s rings when a pod\'s membership may change', () => {
    const keys: string[] = [];
    const invalidated: string[] = [];
    const handler = podHandler((k, delayMs) => keys.push(`${k} after ${delayMs}`), (ns) => invalidated.push(ns), (pod) => pod.metadata.annotations?.['prober.crowsnest.dev/network-prober']);
    const pod = injectedPod('web-0', 'shop', 'mesh');
    handler.onAdd!(pod);
    handler.onUpdate!(pod, { ...pod, metadata: { ...pod.metadata, resourceVersion: '99' } });
    handler.onUpdate!(pod, { ...pod, status: { ...pod.status, phase: 'Succeeded' } });
    assert.deepEqual(keys, ['shop/mesh after 1000', 'shop/mesh after 1000'], 'a resourceVersion bump alone is no change; a burst is one delayed reconcile');
    assert.deepEqual(invalidated, ['shop', 'shop']);
  });
});
