import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { type GuardPolicy, GuardPolicyApi, type GuardPolicyStatus } from './api.ts';
import { QUARANTINE_ANNOTATION, QUARANTINE_LABEL, type QuarantineRecord } from './contract.ts';
import { GuardController, type PodDisruptionBudgetLike } from './controller.ts';
import type { GuardPod } from './pods.ts';
import { GuardSignals } from './signals.ts';
import { GUARD_TAINT_FINALIZER, GUARD_TAINT_KEY, type NodeLike, type NodeTaint } from './taint.ts';
import { FakeClock } from '../kube/clock.ts';
import { KubeApiError } from '../kube/client/client.ts';
import { FakeWriter } from '../kube/objects/fake-writer.ts';
import { FIELD_MANAGERS } from '../kube/objects/labels.ts';

interface Request {
  readonly method: string;
  readonly path: string;
  readonly query?: Record<string, unknown>;
  readonly body?: unknown;
}

function policyOf(spec: Record<string, unknown>, status?: GuardPolicyStatus): GuardPolicy {
  const result = GuardPolicyApi.validate({ apiVersion: 'crowsnest.dev/v1alpha1', kind: 'GuardPolicy', metadata: { name: 'web', namespace: 'shop', uid: 'gp-1', generation: 1 }, spec });
  if (!result.valid) throw new Error('invalid fixture');
  return { ...result.value, ...(status ? { status } : {}) } as GuardPolicy;
}

function crashing(name: string, restarts: number, extra: Partial<GuardPod['metadata']> = {}): GuardPod {
  return {
    metadata: {
      name, namespace: 'shop', uid: `uid-${name}`, resourceVersion: '7', labels: { app: 'web', 'pod-template-hash': 'h1' },
      ownerReferences: [{ apiVersion: 'apps/v1', kind: 'ReplicaSet', name: 'web-h1', uid: 'rs-1', controller: true }], ...extra,
    },
    spec: { nodeName: 'node-a', ports: [] },
    status: { phase: 'Running', containers: [{ name: 'main', restartCount: restarts, ready: false, waitingReason: 'CrashLoopBackOff' }] },
  };
}

class Fixture {
  readonly clock = new FakeClock(Date.parse('2026-01-01T00:00:00Z'));
  readonly writer = new FakeWriter({ fieldManager: FIELD_MANAGERS.guard });
  readonly requests: Request[] = [];
  readonly statuses: GuardPolicyStatus[] = [];
  readonly events: string[] = [];
  readonly signals = new GuardSignals();
  pods: GuardPod[] = [];
  budgets: PodDisruptionBudgetLike[] = [];
  nodes: NodeLike[] = [];
  policy: GuardPolicy;
  evictionRefused = false;
  /** Pod patches to refuse as a failed JSON patch test (the pod changed). */
  stalePatches = 0;
  readonly controller: GuardController;

  constructor(spec: Record<string, unknown>, status?: GuardPolicyStatus) {
    this.policy = policyOf(spec, status);
    this.controller = new GuardController({
      policy: () => this.policy,
      podsIn: () => this.pods,
      budgetsIn: () => this.budgets,
      nodes: () => this.nodes,
      api: {
        json: async <T>(path: string, init: { method?: string; query?: Record<string, unknown>; body?: unknown } = {}): Promise<T> => {
          const method = init.method ?? 'GET';
          this.requests.push({ method, path, ...(init.query ? { query: init.query } : {}), ...(init.body !== undefined ? { body: init.body } : {}) });
          if (path.endsWith('/eviction') && this.evictionRefused) {
            throw new KubeApiError({ method, path, status: 429, body: '{"kind":"Status","reason":"TooManyRequests","message":"Cannot evict pod as it would violate the pod\'s disruption budget."}' });
          }
          if (method === 'PATCH' && path.includes('/pods/') && this.stalePatches > 0) {
            this.stalePatches--;
            throw new KubeApiError({ method, path, status: 422, body: '{"kind":"Status","reason":"Invalid","message":"the server rejected our request due to an error in our request"}' });
          }
          if (method === 'GET' && path.startsWith('/api/v1/namespaces/shop/pods/')) {
            const pod = this.pods.find((p) => path.endsWith(`/${p.metadata.name}`));
            if (pod) {
              return {
                metadata: { ...pod.metadata, resourceVersion: '8' }, spec: { nodeName: pod.spec.nodeName, containers: [{ name: 'main' }] },
                status: { phase: 'Running', containerStatuses: [{ name: 'main', restartCount: 9, ready: false }] },
              } as T;
            }
          }
          const nodeName = path.startsWith('/api/v1/nodes/') ? path.slice('/api/v1/nodes/'.length) : undefined;
          const node = this.nodes.find((n) => n.metadata.name === nodeName);
          if (node && method === 'GET') return structuredClone(node) as T;
          if (node && method === 'PATCH') {
            const [test, add] = init.body as Array<{ op: string; value: unknown }>;
            if (test?.value !== node.metadata.resourceVersion) throw new KubeApiError({ method, path, status: 422, body: '{"kind":"Status","reason":"Invalid"}' });
            if (init.query?.dryRun) return structuredClone(node) as T;
            const next: NodeLike = { ...node, metadata: { ...node.metadata, resourceVersion: String(Number(node.metadata.resourceVersion) + 1) }, spec: { ...node.spec, taints: add!.value as NodeTaint[] } };
            this.nodes = this.nodes.map((n) => (n === node ? next : n));
            return structuredClone(next) as T;
          }
          if (method === 'GET' && path.includes('/replicasets/')) return { spec: { selector: { matchLabels: { app: 'web', 'pod-template-hash': 'h1' } } } } as T;
          if (method === 'GET') throw new KubeApiError({ method, path, status: 404, body: '{"kind":"Status","reason":"NotFound"}' });
          return { metadata: { resourceVersion: '100' } } as T;
        },
      } as never,
      writer: this.writer,
      statusWriter: {
        write: async (_obj, status) => {
          this.statuses.push(status);
          return { written: false };
        },
        forget: () => {},
      },
      signals: this.signals,
      recorder: { event: (regarding, type, reason) => { this.events.push(`${regarding.kind}/${regarding.name} ${type} ${reason}`); } },
      clock: this.clock,
    });
  }

  /** Two observations of `pods`: at their current counts, then with `more` restarts each. */
  async crash(names: readonly string[], more = 3): Promise<void> {
    await this.reconcile();
    this.pods = this.pods.map((p) => (names.includes(p.metadata.name) ? { ...crashing(p.metadata.name, p.status.containers[0]!.restartCount + more, p.metadata), spec: p.spec } : p));
    this.clock.advance(10_000);
    await this.reconcile();
  }

  async reconcile(): Promise<void> {
    await this.controller.reconcile('shop/web', new AbortController().signal);
  }

  get status(): GuardPolicyStatus {
    return this.statuses.at(-1)!;
  }

  patches(): Request[] {
    return this.requests.filter((r) => r.method === 'PATCH');
  }
}

const base = {
  targets: { podSelector: { matchLabels: { app: 'web' } } },
  detectors: { crashLoop: { restarts: 3, window: '10m' } },
  actions: ['Event', 'Quarantine', 'Isolate'],
  cooldown: '0s',
};

describe('GuardController', () => {
  it('opens an incident for a crash loop and climbs the ladder: Event, Quarantine (guarded patch), Isolate', async () => {
    const f = new Fixture(base);
    f.pods = [crashing('web-1', 0)];
    await f.crash(['web-1']);
    const [incident] = f.status.incidents!;
    assert.equal(incident?.detector, 'crashLoop');
    assert.deepEqual(incident!.actions.map((a) => `${a.action}:${a.outcome}`), ['Event:Taken', 'Quarantine:Taken', 'Isolate:Taken']);
    const [patch] = f.patches();
    assert.equal(patch?.path, '/api/v1/namespaces/shop/pods/web-1');
    assert.deepEqual(patch?.query, { fieldManager: 'crowsnest-guard', dryRun: undefined });
    const ops = patch!.body as Array<{ op: string; path: string; value?: unknown }>;
    assert.deepEqual(ops.slice(0, 4).map((o) => `${o.op} ${o.path}`), ['test /metadata/uid', 'test /metadata/resourceVersion', 'remove /metadata/labels/app', 'remove /metadata/labels/pod-template-hash']);
    assert.ok(ops.some((o) => o.op === 'remove' && o.path === '/metadata/ownerReferences'));
    assert.deepEqual(f.writer.actions.map((a) => `${a.verb} ${a.resource} ${a.namespace}/${a.name}`), [`apply networkpolicies shop/crowsnest-guard-isolate-${incident!.id}`]);
    assert.ok(f.events.includes('Pod/web-1 Warning IncidentOpened') && f.events.includes('GuardPolicy/web Normal QuarantineTaken'));
    assert.equal(f.status.openIncidents, 1);
    assert.ok(f.status.conditions?.some((c) => c.type === 'Degraded' && c.status === 'True' && c.reason === 'IncidentsOpen'));
  });

  it('keeps the incident open while the cache has not seen its quarantine yet, so the rail still counts it', async () => {
    const f = new Fixture({ ...base, quarantine: { maxQuarantined: 1 } });
    f.pods = [crashing('web-1', 0), crashing('web-2', 0)];
    await f.crash(['web-1']);
    // The cache still shows web-1 as before the patch (resourceVersion 7 < 100): not "released".
    await f.crash(['web-2']);
    assert.equal(f.status.incidents!.find((i) => i.pod === 'web-1')?.closedAt, undefined);
    assert.match(f.status.incidents!.find((i) => i.pod === 'web-2')!.actions[1]!.message, /^maxQuarantined/);
    assert.equal(f.patches().length, 1);
    // Once the cache shows it released (a newer version without the label), the incident closes.
    f.pods = [crashing('web-1', 6, { resourceVersion: '120' }), f.pods[1]!];
    await f.reconcile();
    assert.ok(f.status.incidents!.some((i) => i.pod === 'web-1' && i.closedAt));
  });

  it('reads a pod that changed since the cache saw it again, and quarantines it as it is now', async () => {
    const f = new Fixture(base);
    f.pods = [crashing('web-1', 0)];
    f.stalePatches = 1;
    await f.crash(['web-1']);
    assert.equal(f.status.incidents![0]!.actions[1]!.outcome, 'Taken');
    const [stale, fresh] = f.patches();
    assert.deepEqual((stale!.body as Array<{ path: string; value?: unknown }>)[1], { op: 'test', path: '/metadata/resourceVersion', value: '7' });
    assert.deepEqual((fresh!.body as Array<{ path: string; value?: unknown }>)[1], { op: 'test', path: '/metadata/resourceVersion', value: '8' });
  });

  it('gives up on a pod that keeps changing, recording the quarantine as failed', async () => {
    const f = new Fixture(base);
    f.pods = [crashing('web-1', 0)];
    f.stalePatches = 5;
    await f.crash(['web-1']);
    assert.deepEqual(f.status.incidents![0]!.actions.map((a) => `${a.action}:${a.outcome}`), ['Event:Taken', 'Quarantine:Failed', 'Isolate:Skipped']);
    assert.equal(f.patches().length, 3);
  });

  it('in dry run sends every write with dryRun and records DryRun outcomes', async () => {
    const f = new Fixture({ ...base, dryRun: true });
    f.pods = [crashing('web-1', 0)];
    await f.crash(['web-1']);
    assert.deepEqual(f.status.incidents![0]!.actions.map((a) => `${a.action}:${a.outcome}`), ['Event:Taken', 'Quarantine:DryRun', 'Isolate:DryRun']);
    assert.deepEqual(f.patches().map((p) => p.query?.['dryRun']), ['All']);
    assert.deepEqual(f.writer.actions.map((a) => a.dryRun), [true]);
  });

  it('quarantines at most maxQuarantined pods of a group, even when all crash in one pass', async () => {
    const f = new Fixture({ ...base, quarantine: { maxQuarantined: 1 } });
    f.pods = ['web-1', 'web-2', 'web-3'].map((n) => crashing(n, 0));
    await f.crash(['web-1', 'web-2', 'web-3']);
    assert.equal(f.patches().length, 1);
    const outcomes = f.status.incidents!.map((i) => i.actions.find((a) => a.action === 'Quarantine')!);
    assert.equal(outcomes.filter((a) => a.outcome === 'Taken').length, 1);
    assert.equal(outcomes.filter((a) => a.outcome === 'Skipped' && /maxQuarantined: 1 of 3 pods/.test(a.message)).length, 2);
    const skipped = f.status.incidents!.filter((i) => i.actions.some((a) => a.action === 'Quarantine' && a.outcome === 'Skipped'));
    assert.ok(skipped.every((i) => i.actions.some((a) => a.action === 'Isolate' && a.outcome === 'Skipped' && a.message === 'needs Quarantine, which was skipped')));
  });

  it('quarantines the next held-back pod when a slot frees, one at a time', async () => {
    const f = new Fixture({ ...base, quarantine: { maxQuarantined: 1 } });
    f.pods = ['web-1', 'web-2', 'web-3'].map((n) => crashing(n, 0));
    await f.crash(['web-1', 'web-2', 'web-3']);
    const first = f.status.incidents!.find((i) => i.actions.some((a) => a.action === 'Quarantine' && a.outcome === 'Taken'))!;
    await f.reconcile();
    assert.equal(f.patches().length, 1, 'nothing more while the slot is taken');
    // The quarantined pod is deleted (its ttl, or by hand): its slot frees.
    f.pods = f.pods.filter((p) => p.metadata.uid !== first.podUid);
    await f.reconcile();
    assert.equal(f.patches().length, 2, 'exactly one more quarantined');
    const resumed = f.status.incidents!.filter((i) => !i.closedAt && i.actions.at(-2)?.action === 'Quarantine' && i.actions.at(-2)?.outcome === 'Taken');
    assert.equal(resumed.length, 1);
    assert.deepEqual(resumed[0]!.actions.map((a) => `${a.action}:${a.outcome}`), ['Event:Taken', 'Quarantine:Skipped', 'Isolate:Skipped', 'Quarantine:Taken', 'Isolate:Taken']);
    await f.reconcile();
    assert.equal(f.patches().length, 2, 'the third waits');
  });

  it('holds disruption of a group within its cooldown', async () => {
    const f = new Fixture({ ...base, cooldown: '5m', quarantine: { maxQuarantined: '100%' } });
    f.pods = [crashing('web-1', 0), crashing('web-2', 0)];
    await f.crash(['web-1']);
    await f.crash(['web-2']);
    const second = f.status.incidents!.find((i) => i.pod === 'web-2')!;
    assert.match(second.actions.find((a) => a.action === 'Quarantine')!.message, /^cooldown: the group ReplicaSet\/web-h1 was last disrupted/);
    assert.equal(f.patches().length, 1);
  });

  it('holds quarantine that a PodDisruptionBudget does not allow', async () => {
    const f = new Fixture(base);
    f.budgets = [{ metadata: { name: 'web-pdb', namespace: 'shop' }, spec: { selector: { matchLabels: { app: 'web' } } }, status: { disruptionsAllowed: 0 } }];
    f.pods = [crashing('web-1', 0)];
    await f.crash(['web-1']);
    assert.equal(f.status.incidents![0]!.actions[1]!.message, 'PodDisruptionBudget web-pdb allows no disruption now');
    assert.equal(f.patches().length, 0);
  });

  it('evicts through the Eviction API, recording a refusal (a PDB) as skipped', async () => {
    const f = new Fixture({ ...base, actions: ['Event', 'Evict'] });
    f.evictionRefused = true;
    f.pods = [crashing('web-1', 0)];
    await f.crash(['web-1']);
    const evict = f.status.incidents![0]!.actions[1]!;
    assert.equal(evict.outcome, 'Skipped');
    assert.match(evict.message, /the Eviction API refused: .*disruption budget/);
    const eviction = f.requests.find((r) => r.path.endsWith('/eviction'))!;
    assert.deepEqual(eviction.body, { apiVersion: 'policy/v1', kind: 'Eviction', metadata: { name: 'web-1', namespace: 'shop' }, deleteOptions: { preconditions: { uid: 'uid-web-1' } } });
  });

  it('tries a refused eviction again with doubling waits while the incident is open, and records it taken once', async () => {
    const f = new Fixture({ ...base, actions: ['Event', 'Evict'] });
    f.evictionRefused = true;
    f.pods = [crashing('web-1', 0)];
    await f.crash(['web-1']);
    const evictions = () => f.requests.filter((r) => r.path.endsWith('/eviction')).length;
    assert.equal(evictions(), 1);
    assert.match(f.status.incidents![0]!.actions[1]!.message, /allows no disruption now\); held: tried again with backoff while the incident is open$/);
    // Reconciles in quick succession (a crash-looping pod's status changes all the time) do not hot-loop.
    for (let i = 0; i < 5; i++) {
      f.clock.advance(1_000);
      await f.reconcile();
    }
    assert.equal(evictions(), 2, 'one retry 5 s after the refusal, none before the next wait (10 s) is over');
    f.clock.advance(9_000);
    await f.reconcile();
    assert.equal(evictions(), 2);
    f.clock.advance(1_000);
    await f.reconcile();
    assert.equal(evictions(), 3);
    assert.deepEqual(f.status.incidents![0]!.actions.map((a) => `${a.action}:${a.outcome}`), ['Event:Taken', 'Evict:Skipped'], 'refusals after the first are not recorded again');
    f.evictionRefused = false;
    f.clock.advance(20_000);
    await f.reconcile();
    assert.equal(evictions(), 4);
    assert.deepEqual(f.status.incidents![0]!.actions.map((a) => `${a.action}:${a.outcome}`), ['Event:Taken', 'Evict:Skipped', 'Evict:Taken']);
    f.clock.advance(120_000);
    await f.reconcile();
    assert.equal(evictions(), 4, 'evicted once');
  });

  it('tries an eviction the last leader was refused again after taking over', async () => {
    const f = new Fixture({ ...base, detectors: { crashLoop: { restarts: 1, window: '10m' } }, actions: ['Event', 'Evict'] }, {
      incidents: [{
        id: 'crashloop-0123456789', pod: 'web-1', podUid: 'uid-web-1', group: 'ReplicaSet/web-h1', detector: 'crashLoop', reason: 'CrashLoop', evidence: [], openedAt: '2026-01-01T00:00:00Z',
        actions: [{ action: 'Evict', at: '2026-01-01T00:00:00Z', outcome: 'Skipped', message: 'the Eviction API refused' }],
      }],
    });
    // Still crashing as the new leader first sees it: a restart that finished a moment ago.
    const pod = crashing('web-1', 5);
    f.pods = [{ ...pod, status: { ...pod.status, containers: [{ ...pod.status.containers[0]!, lastTerminated: { reason: 'Error', finishedAt: '2026-01-01T00:00:00Z' } }] } }];
    await f.reconcile();
    assert.equal(f.status.incidents!.length, 1);
    assert.deepEqual(f.status.incidents![0]!.actions.map((a) => `${a.action}:${a.outcome}`), ['Evict:Skipped', 'Evict:Taken']);
  });

  it('holds the preventive restart until the rest of the group is ready, then restarts one similar pod once', async () => {
    const f = new Fixture({ ...base, actions: ['Event', 'Preventive'] });
    const ready = (name: string, restarts: number, isReady = true): GuardPod => ({ ...crashing(name, restarts), status: { phase: 'Running', containers: [{ name: 'main', restartCount: restarts, ready: isReady }] } });
    f.pods = [crashing('web-1', 0), ready('web-2', 1, false), ready('web-3', 4)];
    await f.crash(['web-1']);
    const evictions = () => f.requests.filter((r) => r.path.endsWith('/eviction')).map((r) => r.path);
    assert.match(f.status.incidents![0]!.actions[1]!.message, /^similar pods not ready \(web-2\)/);
    f.clock.advance(5_000);
    await f.reconcile();
    assert.deepEqual(evictions(), [], 'not while web-2 is not ready');
    f.pods = f.pods.map((p) => (p.metadata.name === 'web-2' ? ready('web-2', 1) : p));
    f.clock.advance(10_000);
    await f.reconcile();
    assert.deepEqual(evictions(), ['/api/v1/namespaces/shop/pods/web-3/eviction']);
    assert.deepEqual(f.status.incidents![0]!.actions.map((a) => `${a.action}:${a.outcome}`), ['Event:Taken', 'Preventive:Skipped', 'Preventive:Taken']);
    f.clock.advance(120_000);
    await f.reconcile();
    assert.equal(evictions().length, 1, 'one restart per incident');
  });

  it('says so when the group is being rolled out by its Deployment, and restarts nothing', async () => {
    const f = new Fixture({ ...base, targets: { ...base.targets, groupBy: ['app'] }, actions: ['Event', 'Preventive'] });
    const next: GuardPod = { ...crashing('web-4', 0, { labels: { app: 'web', 'pod-template-hash': 'h2' }, ownerReferences: [{ apiVersion: 'apps/v1', kind: 'ReplicaSet', name: 'web-h2', uid: 'rs-2', controller: true }] }) };
    f.pods = [crashing('web-1', 0), { ...next, status: { phase: 'Running', containers: [{ name: 'main', restartCount: 0, ready: true }] } }];
    await f.crash(['web-1']);
    assert.match(f.status.incidents![0]!.actions[1]!.message, /^Deployment web is being rolled out by someone else \(its pods carry 2 revisions: h1: 1, h2: 1\)/);
    assert.equal(f.requests.filter((r) => r.path.endsWith('/eviction')).length, 0);
  });

  it('restarts one similar pod as the preventive step, only while the rest of the group is ready', async () => {
    const f = new Fixture({ ...base, actions: ['Event', 'Preventive'] });
    const ready = (name: string, restarts: number): GuardPod => ({ ...crashing(name, restarts), status: { phase: 'Running', containers: [{ name: 'main', restartCount: restarts, ready: true }] } });
    f.pods = [crashing('web-1', 0), ready('web-2', 1), ready('web-3', 4)];
    await f.crash(['web-1']);
    assert.match(f.status.incidents![0]!.actions[1]!.message, /^restarted similar pod web-3 \(evicted/);
    assert.deepEqual(f.requests.filter((r) => r.path.endsWith('/eviction')).map((r) => r.path), ['/api/v1/namespaces/shop/pods/web-3/eviction']);
  });

  it('closes an incident once its pod is gone, and deletes a quarantined pod whose ttl ended', async () => {
    const f = new Fixture({ ...base, quarantine: { ttl: '1m', onExpiry: 'Delete' } });
    f.pods = [crashing('web-1', 0), crashing('web-2', 0)];
    await f.crash(['web-1']);
    const incident = f.status.incidents![0]!;
    // The cache now shows web-1 quarantined, with the record the patch wrote.
    const ops = f.patches()[0]!.body as Array<{ path: string; value?: unknown }>;
    const record = JSON.parse(ops.find((o) => o.path.endsWith('quarantine'))!.value as string) as QuarantineRecord;
    f.pods = [crashing('web-1', 3, { labels: { [QUARANTINE_LABEL]: incident.id }, annotations: { [QUARANTINE_ANNOTATION]: JSON.stringify(record) }, ownerReferences: [] }), f.pods[1]!];
    await f.reconcile();
    assert.equal(f.status.quarantinedPods, 1);
    assert.equal(f.writer.actions.filter((a) => a.verb === 'delete').length, 0, 'not before the ttl');
    f.clock.advance(61_000);
    f.policy = policyOf({ ...base, quarantine: { ttl: '1m', onExpiry: 'Delete' }, dryRun: true });
    await f.reconcile();
    assert.equal(f.writer.actions.filter((a) => a.verb === 'delete').length, 0, 'a policy in dry run deletes nothing, ttl or not');
    f.policy = policyOf({ ...base, quarantine: { ttl: '1m', onExpiry: 'Delete' } });
    await f.reconcile();
    assert.deepEqual(f.writer.actions.filter((a) => a.verb === 'delete').map((a) => `${a.resource} ${a.name}`), ['pods web-1']);
    assert.ok(f.events.includes('Pod/web-1 Normal QuarantineDeleted'));
    f.pods = [f.pods[1]!];
    await f.reconcile();
    assert.ok(f.status.incidents![0]!.closedAt);
    assert.equal(f.status.openIncidents, 0);
  });

  it('gives a quarantined pod its labels back when its ttl ends with onExpiry Release', async () => {
    const f = new Fixture({ ...base, quarantine: { ttl: '1m', onExpiry: 'Release' } });
    const record: QuarantineRecord = { incident: 'crashloop-0000000002', policy: 'web', detector: 'crashLoop', at: '2025-12-31T23:00:00Z', until: '2025-12-31T23:59:00Z', removedLabels: { app: 'web' } };
    f.pods = [crashing('web-1', 3, { labels: { 'pod-template-hash': 'h1', [QUARANTINE_LABEL]: record.incident }, annotations: { [QUARANTINE_ANNOTATION]: JSON.stringify(record) }, ownerReferences: [] })];
    await f.reconcile();
    const [release] = f.patches();
    assert.deepEqual((release!.body as Array<{ op: string; path: string }>).slice(2).map((o) => `${o.op} ${o.path}`), [
      'remove /metadata/labels/guard.crowsnest.dev~1quarantined', 'add /metadata/labels/app', 'remove /metadata/annotations/guard.crowsnest.dev~1quarantine',
    ]);
    assert.ok(f.events.includes('Pod/web-1 Normal QuarantineReleased'));
  });

  it('picks up the incidents a previous leader recorded, cooldown included', async () => {
    const now = Date.parse('2026-01-01T00:00:00Z');
    const at = new Date(now - 60_000).toISOString();
    const f = new Fixture({ ...base, cooldown: '5m', quarantine: { maxQuarantined: '100%' } }, {
      incidents: [{ id: 'crashloop-0000000001', pod: 'web-9', podUid: 'uid-web-9', group: 'ReplicaSet/web-h1', detector: 'crashLoop', reason: 'CrashLoop', evidence: ['x'], openedAt: at, actions: [{ action: 'Quarantine', at, outcome: 'Taken', message: 'm' }] }],
    });
    f.pods = [crashing('web-1', 0)];
    await f.crash(['web-1']);
    const fresh = f.status.incidents!.find((i) => i.pod === 'web-1')!;
    assert.match(fresh.actions.find((a) => a.action === 'Quarantine')!.message, /^cooldown:/);
    assert.ok(f.status.incidents!.find((i) => i.pod === 'web-9')?.closedAt, 'the old incident\'s pod is gone: closed');
  });

  it('finds a pod whose restart rate is far above its group\'s baseline (anomaly), silent until the baseline has its samples', async () => {
    const f = new Fixture({ ...base, detectors: { anomaly: { signal: 'restarts', zScore: 3, minSamples: 8, halfLife: '10m' } }, actions: ['Event'] });
    const steady = (name: string, restarts = 0): GuardPod => ({ ...crashing(name, restarts), status: { phase: 'Running', containers: [{ name: 'main', restartCount: restarts, ready: true }] } });
    f.pods = ['web-1', 'web-2', 'web-3', 'web-4'].map((n) => steady(n));
    await f.reconcile();
    // Seven samples when web-4 is judged (< 8): its burst is not judged yet.
    f.pods = [steady('web-1'), steady('web-2'), steady('web-3'), steady('web-4', 5)];
    f.clock.advance(10_000);
    await f.reconcile();
    assert.equal(f.status.incidents?.length ?? 0, 0);
    for (let i = 0; i < 3; i++) {
      f.clock.advance(61_000);
      await f.reconcile();
    }
    assert.equal(f.status.incidents?.length ?? 0, 0, 'a quiet group');
    f.pods = [steady('web-1'), steady('web-2'), steady('web-3'), steady('web-4', 11)];
    f.clock.advance(10_000);
    await f.reconcile();
    const [incident] = f.status.incidents!;
    assert.equal(incident?.pod, 'web-4');
    assert.equal(incident?.detector, 'anomaly');
    assert.match(incident!.evidence[0]!, /^restarts at 6\/min, z-score \d+\.\d \(threshold 3\) against group ReplicaSet\/web-h1 \(4 pods\)/);
  });
  describe('Preventive taintNode', () => {
    const foreign: NodeTaint = { key: 'dedicated', value: 'db', effect: 'NoSchedule' };
    const ours: NodeTaint = { key: GUARD_TAINT_KEY, value: 'shop.web', effect: 'NoSchedule' };
    const readyNode = (name: string, taints: NodeTaint[] = []): NodeLike => ({
      metadata: { name, uid: `uid-${name}`, resourceVersion: '10' }, spec: { taints }, status: { conditions: [{ type: 'Ready', status: 'True' }] },
    });
    const spec = (extra: Record<string, unknown> = {}) => ({
      ...base, actions: ['Event', 'Preventive'], cooldown: '5m',
      preventive: { restartSimilar: false, taintNode: { incidents: 2, window: '10m', ttl: '30m' } }, ...extra,
    });
    const onNode = (pod: GuardPod, nodeName: string): GuardPod => ({ ...pod, spec: { ...pod.spec, nodeName } });
    const taintsOf = (f: Fixture, name: string) => f.nodes.find((n) => n.metadata.name === name)?.spec?.taints;
    const preventive = (f: Fixture) => f.status.incidents!.flatMap((i) => i.actions.filter((a) => a.action === 'Preventive').map((a) => `${i.pod} ${a.outcome}: ${a.message}`));

    it('taints the node where the group\'s incidents concentrate (cooldown or not), after the finalizer; removes only its own taint when the ttl ends', async () => {
      const f = new Fixture(spec());
      f.nodes = [readyNode('node-a', [foreign]), readyNode('node-b')];
      f.pods = [crashing('web-1', 0), crashing('web-2', 0), onNode(crashing('web-3', 0), 'node-b')];
      await f.crash(['web-1']);
      assert.match(preventive(f)[0]!, /^web-1 Skipped: no node tainted: 1 incident of group ReplicaSet\/web-h1 on node node-a/);
      await f.crash(['web-2']);
      assert.match(preventive(f)[0]!, /^web-2 Taken: tainted node node-a guard\.crowsnest\.dev\/failing=shop\.web:NoSchedule until 2026-01-01T00:30:20Z: 2 of 2 incidents/);
      const added = { ...ours, timeAdded: '2026-01-01T00:00:20Z' };
      assert.deepEqual(taintsOf(f, 'node-a'), [foreign, added]);
      assert.deepEqual(taintsOf(f, 'node-b'), []);
      assert.deepEqual(f.writer.actions.map((a) => `${a.verb} ${a.resource} ${a.namespace}/${a.name}`), ['addFinalizer guardpolicies shop/web']);
      assert.ok(f.events.includes('Node/node-a Warning NodeTainted') && f.events.includes('GuardPolicy/web Normal PreventiveTaken'));

      f.clock.advance(29 * 60_000);
      await f.reconcile();
      assert.deepEqual(taintsOf(f, 'node-a'), [foreign, added], 'kept until its ttl');
      f.clock.advance(60_000);
      await f.reconcile();
      assert.deepEqual(taintsOf(f, 'node-a'), [foreign], 'its own taint removed, the other left alone');
      assert.ok(f.events.includes('Node/node-a Normal NodeUntainted'));
    });

    it('starts no cooldown with a taint: a leader that finds one recorded still evicts the next failing pod', async () => {
      const at = '2026-01-01T00:00:00Z';
      const seeded = {
        incidents: [{
          id: 'crashloop-0', pod: 'web-0', podUid: 'uid-web-0', node: 'node-a', group: 'ReplicaSet/web-h1', detector: 'crashLoop' as const, reason: 'CrashLoop', evidence: [], openedAt: at,
          actions: [{ action: 'Preventive' as const, at, outcome: 'Taken' as const, message: 'tainted node node-a guard.crowsnest.dev/failing=shop.web:NoSchedule until 2026-01-01T00:30:00Z: ...' }],
        }],
      };
      const f = new Fixture(spec({ actions: ['Event', 'Preventive', 'Evict'] }), seeded);
      f.nodes = [readyNode('node-a', [ours]), readyNode('node-b')];
      f.pods = [crashing('web-1', 0)];
      await f.crash(['web-1']);
      const incident = f.status.incidents!.find((i) => i.pod === 'web-1')!;
      assert.deepEqual(incident.actions.map((a) => `${a.action}:${a.outcome}`), ['Event:Taken', 'Preventive:Skipped', 'Evict:Taken']);
      assert.match(incident.actions[1]!.message, /node node-a carries this policy's taint already/);
    });

    it('removes the taint when the policy is deleted, then its finalizer', async () => {
      const f = new Fixture(spec());
      f.nodes = [readyNode('node-a', [ours, foreign]), readyNode('node-b')];
      f.policy = { ...f.policy, metadata: { ...f.policy.metadata, deletionTimestamp: '2026-01-01T00:00:00Z', finalizers: [GUARD_TAINT_FINALIZER] } };
      await f.reconcile();
      assert.deepEqual(taintsOf(f, 'node-a'), [foreign]);
      assert.deepEqual(f.writer.actions.map((a) => `${a.verb} ${a.resource} ${a.namespace}/${a.name}`), ['removeFinalizer guardpolicies shop/web']);
    });

    it('in dry run records the taint it would make and changes nothing', async () => {
      const f = new Fixture(spec({ dryRun: true }));
      f.nodes = [readyNode('node-a'), readyNode('node-b')];
      f.pods = [crashing('web-1', 0), crashing('web-2', 0)];
      await f.crash(['web-1', 'web-2']);
      assert.ok(preventive(f).some((p) => /DryRun: dry run: would taint node node-a /.test(p)), preventive(f).join('\n'));
      assert.deepEqual(taintsOf(f, 'node-a'), []);
      assert.deepEqual(f.patches().map((r) => `${r.path} ${String(r.query?.dryRun)}`), ['/api/v1/nodes/node-a All']);
      assert.deepEqual(f.writer.actions, [], 'no finalizer');
      assert.ok(!f.events.some((e) => e.startsWith('Node/')));
    });

    it('leaves alone the last node the group\'s pods can be scheduled on', async () => {
      const f = new Fixture(spec());
      f.nodes = [readyNode('node-a'), readyNode('node-b', [{ key: 'kwok.x-k8s.io/node', value: 'fake', effect: 'NoSchedule' }])];
      f.pods = [crashing('web-1', 0), crashing('web-2', 0)];
      await f.crash(['web-1', 'web-2']);
      assert.ok(preventive(f).some((p) => /Skipped: node node-a is not tainted: no other Ready node would admit pods of group ReplicaSet\/web-h1 \(no nodeSelector/.test(p)), preventive(f).join('\n'));
      assert.deepEqual(f.patches(), []);
    });

    it('reads where the group\'s pods can land from their specs: pinned pods keep their node; tolerating pods count the tainted one', async () => {
      const placed = (spec: Partial<GuardPod['spec']>) => (pod: GuardPod): GuardPod => ({ ...pod, spec: { ...pod.spec, ...spec } });
      const kwokTaint: NodeTaint = { key: 'kwok.x-k8s.io/node', value: 'fake', effect: 'NoSchedule' };
      const pinned = new Fixture(spec());
      pinned.nodes = [readyNode('node-a'), readyNode('node-b')];
      pinned.pods = [crashing('web-1', 0), crashing('web-2', 0)].map(placed({ nodeSelector: { 'kubernetes.io/hostname': 'node-a' } }));
      await pinned.crash(['web-1', 'web-2']);
      assert.ok(preventive(pinned).some((p) => /Skipped: node node-a is not tainted: .* \(nodeSelector kubernetes\.io\/hostname=node-a\)$/.test(p)), preventive(pinned).join('\n'));
      assert.deepEqual(pinned.patches(), []);

      const tolerating = new Fixture(spec());
      tolerating.nodes = [readyNode('node-a'), readyNode('node-b', [kwokTaint])];
      tolerating.pods = [crashing('web-1', 0), crashing('web-2', 0)].map(placed({ tolerations: [{ key: 'kwok.x-k8s.io/node', operator: 'Exists' }] }));
      await tolerating.crash(['web-1', 'web-2']);
      assert.ok(preventive(tolerating).some((p) => /Taken: tainted node node-a .*; 1 other node admits the group's pods$/.test(p)), preventive(tolerating).join('\n'));
    });

    it('ends a taint at its timeAdded plus the ttl, read from the node by a controller that never saw it added (a restart, a new leader)', async () => {
      const node = (timeAdded?: string) => readyNode('node-a', [foreign, { ...ours, ...(timeAdded ? { timeAdded } : {}) }]);
      // 00:00:00 now; ttl 30m.
      const expired = new Fixture(spec());
      expired.nodes = [node('2025-12-31T23:30:00Z'), readyNode('node-b')];
      await expired.reconcile();
      assert.deepEqual(taintsOf(expired, 'node-a'), [foreign], 'added 30m ago: removed at once');
      assert.ok(expired.events.includes('GuardPolicy/web Normal NodeUntainted'));

      const running = new Fixture(spec());
      running.nodes = [node('2025-12-31T23:31:00Z'), readyNode('node-b')];
      await running.reconcile();
      assert.deepEqual(taintsOf(running, 'node-a'), [foreign, { ...ours, timeAdded: '2025-12-31T23:31:00Z' }], 'a minute left: kept, timeAdded untouched');
      running.clock.advance(60_000);
      await running.reconcile();
      assert.deepEqual(taintsOf(running, 'node-a'), [foreign]);

      const unstamped = new Fixture(spec());
      unstamped.nodes = [node(), readyNode('node-b')];
      await unstamped.reconcile();
      assert.deepEqual(taintsOf(unstamped, 'node-a'), [foreign, { ...ours, timeAdded: '2026-01-01T00:00:00Z' }], 'no timeAdded: stamped now, so its ttl runs from here for every replica');
      unstamped.clock.advance(30 * 60_000);
      await unstamped.reconcile();
      assert.deepEqual(taintsOf(unstamped, 'node-a'), [foreign]);
    });
  });
});
