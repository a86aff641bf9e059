import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { applyPatch, createPatch } from '../kube/webhook/jsonpatch.ts';
import type { NetworkProber } from './api.ts';
import { NetworkProberApi } from './api.ts';
import { AGENT_NODE_OPTIONS, decideInjection, DEFAULT_AGENT_RESOURCES, type InjectionSettings, type PodObject, selectingProbers } from './inject.ts';

const settings: InjectionSettings = {
  defaultImage: 'registry.example/crowsnest:0.1.0',
  peersUrl: 'https://crowsnest-webhook.crowsnest-system.svc:9444',
  caBundle: '-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n',
  defaultResources: DEFAULT_AGENT_RESOURCES,
};

/** A NetworkProber as the API server stores it: defaults applied by the CRD schema. */
function prober(name: string, namespace: string, spec: Record<string, unknown>): NetworkProber {
  const result = NetworkProberApi.validate({ apiVersion: 'crowsnest.dev/v1alpha1', kind: 'NetworkProber', metadata: { name, namespace, uid: `${name}-uid` }, spec });
  if (!result.valid) throw new Error(JSON.stringify(result.errors));
  return result.value;
}

function pod(labels: Record<string, string>, spec: Partial<NonNullable<PodObject['spec']>> = {}): PodObject {
  return { apiVersion: 'v1', kind: 'Pod', metadata: { generateName: 'web-', labels }, spec: { containers: [{ name: 'app', image: 'app:1' }], ...spec } };
}

const seed = prober('networkprober-sample', 'shop', { podSelector: { matchLabels: { app: 'net-prober' } }, httpPort: '9090', pollingPeriod: '10s', httpPrometheusPort: '1222' });

function injected(decision: ReturnType<typeof decideInjection>): PodObject {
  assert.equal(decision.kind, 'inject', JSON.stringify(decision));
  if (decision.kind !== 'inject') throw new Error('unreachable');
  return decision.pod;
}

type Agent = {
  name: string; image: string; args: string[]; restartPolicy: string; imagePullPolicy: string;
  env: Array<{ name: string; value?: string; valueFrom?: { fieldRef: { fieldPath: string } } }>;
  ports: Array<{ name: string; containerPort: number; protocol: string }>;
  resources: unknown; securityContext: Record<string, unknown>; readinessProbe: { httpGet: { path: string; port: string } };
  volumeMounts: Array<{ name: string; mountPath: string; readOnly: boolean }>;
};

function agentOf(p: PodObject): Agent {
  const agent = p.spec?.initContainers?.find((c) => c.name === 'net-prober');
  assert.ok(agent, 'net-prober init container');
  return agent as unknown as Agent;
}

describe('decideInjection: which pods get the agent', () => {
  it('injects a pod a NetworkProber of its own namespace selects', () => {
    const result = injected(decideInjection(pod({ app: 'net-prober' }), 'shop', [seed], settings));
    assert.equal(result.metadata?.annotations?.['netprober-container-deployed'], 'true');
    assert.equal(result.metadata?.annotations?.['prober.crowsnest.dev/network-prober'], 'networkprober-sample');
    assert.deepEqual(result.metadata?.labels, { app: 'net-prober', 'prober.crowsnest.dev/injected': 'true' }, 'labelled for the operator\'s pod cache');
  });

  it('does not inject a pod of another namespace, even with matching labels (the seed did)', () => {
    const decision = decideInjection(pod({ app: 'net-prober' }), 'billing', [seed], settings);
    assert.deepEqual(decision, { kind: 'skip', reason: 'not_selected', warnings: [] });
  });

  it('does not inject pods the selector leaves out, matchExpressions included', () => {
    const withExpressions = prober('p', 'shop', { podSelector: { matchLabels: { app: 'db' }, matchExpressions: [{ key: 'role', operator: 'NotIn', values: ['backup'] }] } });
    assert.equal(decideInjection(pod({ app: 'web' }), 'shop', [withExpressions], settings).kind, 'skip');
    assert.equal(decideInjection(pod({ app: 'db', role: 'backup' }), 'shop', [withExpressions], settings).kind, 'skip', 'the seed ignored matchExpressions');
    assert.equal(decideInjection(pod({ app: 'db', role: 'primary' }), 'shop', [withExpressions], settings).kind, 'inject');
    assert.equal(decideInjection(pod({ app: 'db' }), 'shop', [withExpressions], settings).kind, 'inject');
  });

  it('ignores a NetworkProber being deleted', () => {
    const deleting = { ...seed, metadata: { ...seed.metadata, deletionTimestamp: '2026-01-01T00:00:00Z' } };
    assert.equal(decideInjection(pod({ app: 'net-prober' }), 'shop', [deleting], settings).kind, 'skip');
  });

  it('takes the first by name when several select the pod, and says so', () => {
    const b = prober('b-prober', 'shop', { podSelector: {} });
    const a = prober('a-prober', 'shop', { podSelector: { matchLabels: { app: 'web' } } });
    const decision = decideInjection(pod({ app: 'web' }), 'shop', [b, a], settings);
    assert.equal(decision.kind, 'inject');
    if (decision.kind !== 'inject') return;
    assert.equal(decision.prober.metadata?.name, 'a-prober');
    assert.match(decision.warnings.join(), /selected by 2 NetworkProbers \(a-prober, b-prober\); it gets the agent of a-prober only/);
    assert.deepEqual(selectingProbers([b, a], 'shop', { app: 'web' }).map((p) => p.metadata?.name), ['a-prober', 'b-prober']);
  });
});

describe('decideInjection: the injected agent', () => {
  it('is a native sidecar appended after the pod\'s own init containers, with the seed\'s names', () => {
    const result = injected(decideInjection(pod({ app: 'net-prober' }, { initContainers: [{ name: 'migrate', image: 'm:1' }] }), 'shop', [seed], settings));
    assert.deepEqual(result.spec?.initContainers?.map((c) => c.name), ['migrate', 'net-prober']);
    assert.deepEqual(result.spec?.containers, [{ name: 'app', image: 'app:1' }], 'app containers untouched');
    const agent = agentOf(result);
    assert.equal(agent.restartPolicy, 'Always');
    assert.deepEqual(agent.args, ['agent']);
    assert.deepEqual(agent.ports, [
      { name: 'np-ping', containerPort: 9090, protocol: 'TCP' },
      { name: 'np-prometheus', containerPort: 1222, protocol: 'TCP' },
    ], 'the seed\'s string ports become numbers');
    const env = Object.fromEntries(agent.env.map((e) => [e.name, e.value ?? `fieldRef:${e.valueFrom?.fieldRef.fieldPath}`]));
    assert.deepEqual(env, {
      HTTP_PORT: '9090',
      HTTP_PROMETHEUS_PORT: '1222',
      CROWSNEST_POD_NAME: 'fieldRef:metadata.name',
      CROWSNEST_POD_NAMESPACE: 'fieldRef:metadata.namespace',
      CROWSNEST_POD_IP: 'fieldRef:status.podIP',
      CROWSNEST_NODE_NAME: 'fieldRef:spec.nodeName',
      CROWSNEST_PROBER_NAME: 'networkprober-sample',
      CROWSNEST_PROBER_PEERS_URL: settings.peersUrl,
      CROWSNEST_PROBER_CA: settings.caBundle,
      CROWSNEST_PROBER_TOKEN_FILE: '/var/run/secrets/crowsnest.dev/prober/token',
      NODE_OPTIONS: AGENT_NODE_OPTIONS,
    });
  });

  it('uses the operator\'s image unless the NetworkProber names one (the seed\'s agentImage keeps working)', () => {
    assert.equal(agentOf(injected(decideInjection(pod({ app: 'net-prober' }), 'shop', [seed], settings))).image, settings.defaultImage);
    const own = prober('p', 'shop', { podSelector: {}, agentImage: 'mirror.example/crowsnest:0.1.0' });
    assert.equal(agentOf(injected(decideInjection(pod({}), 'shop', [own], settings))).image, 'mirror.example/crowsnest:0.1.0');
  });

  it('has resources (the spec\'s, else the operator\'s defaults without a CPU limit)', () => {
    const agent = agentOf(injected(decideInjection(pod({ app: 'net-prober' }), 'shop', [seed], settings)));
    assert.deepEqual(agent.resources, { requests: { cpu: '10m', memory: '64Mi' }, limits: { memory: '128Mi' } });
    const custom = prober('p', 'shop', { podSelector: {}, resources: { requests: { cpu: '50m' }, limits: { memory: '256Mi' } } });
    assert.deepEqual(agentOf(injected(decideInjection(pod({}), 'shop', [custom], settings))).resources, { requests: { cpu: '50m' }, limits: { memory: '256Mi' } });
  });

  it('runs restricted: non-root, read-only root, no privilege escalation, no capabilities, RuntimeDefault seccomp', () => {
    const agent = agentOf(injected(decideInjection(pod({ app: 'net-prober' }), 'shop', [seed], settings)));
    assert.deepEqual(agent.securityContext, {
      runAsNonRoot: true, runAsUser: 65532, runAsGroup: 65532, allowPrivilegeEscalation: false, readOnlyRootFilesystem: true,
      capabilities: { drop: ['ALL'] }, seccompProfile: { type: 'RuntimeDefault' },
    });
  });

  it('is ready when its metrics port answers /readyz', () => {
    assert.deepEqual(agentOf(injected(decideInjection(pod({ app: 'net-prober' }), 'shop', [seed], settings))).readinessProbe.httpGet, { path: '/readyz', port: 'np-prometheus' });
  });

  it('gets a projected token for the prober audience only, short-lived, read-only', () => {
    const result = injected(decideInjection(pod({ app: 'net-prober' }, { volumes: [{ name: 'data', emptyDir: {} }] }), 'shop', [seed], settings));
    assert.deepEqual(result.spec?.volumes, [
      { name: 'data', emptyDir: {} },
      { name: 'crowsnest-prober-token', projected: { sources: [{ serviceAccountToken: { audience: 'crowsnest.dev/prober', expirationSeconds: 600, path: 'token' } }] } },
    ]);
    assert.deepEqual(agentOf(result).volumeMounts, [{ name: 'crowsnest-prober-token', mountPath: '/var/run/secrets/crowsnest.dev/prober', readOnly: true }]);
  });

  it('makes the agent log every probe when the pod asks for it', () => {
    const asked = pod({ app: 'net-prober' });
    asked.metadata!.annotations = { 'prober.crowsnest.dev/agent-log-level': 'debug' };
    assert.deepEqual(agentOf(injected(decideInjection(asked, 'shop', [seed], settings))).env.at(-1), { name: 'CROWSNEST_LOG_LEVEL', value: 'debug' });
    assert.ok(!agentOf(injected(decideInjection(pod({ app: 'net-prober' }), 'shop', [seed], settings))).env.some((e) => e.name === 'CROWSNEST_LOG_LEVEL'));
  });

  it('copies only what it changes, so the webhook\'s patch names only the changed paths', () => {
    const original = pod({ app: 'net-prober' }, { volumes: [{ name: 'data', emptyDir: {} }] });
    const result = injected(decideInjection(original, 'shop', [seed], settings));
    assert.equal(result.spec?.containers, original.spec?.containers);
    const ops = createPatch(original, result);
    assert.deepEqual(ops.map((op) => `${op.op} ${op.path}`).sort(), [
      'add /metadata/annotations', 'add /metadata/labels/prober.crowsnest.dev~1injected', 'add /spec/initContainers', 'add /spec/volumes/-',
    ]);
    assert.deepEqual(applyPatch(original, ops), result);
  });

  it('never changes the pod it was given', () => {
    const original = pod({ app: 'net-prober' });
    const copy = structuredClone(original);
    decideInjection(original, 'shop', [seed], settings);
    assert.deepEqual(original, copy);
  });
});

describe('decideInjection: idempotent and careful', () => {
  it('leaves an injected pod alone when the webhook is called again (reinvocation): no patch', () => {
    const once = injected(decideInjection(pod({ app: 'net-prober' }), 'shop', [seed], settings));
    assert.deepEqual(decideInjection(once, 'shop', [seed], settings), { kind: 'skip', reason: 'already_injected', warnings: [] });
  });

  it('applied as the JSON Patch the webhook answers, then reinvoked after another webhook\'s change: still one agent', () => {
    const original = pod({ app: 'net-prober' });
    const first = applyPatch(original, createPatch(original, injected(decideInjection(original, 'shop', [seed], settings))));
    const byAnother = structuredClone(first);
    byAnother.spec!.containers!.push({ name: 'mesh-proxy', image: 'proxy:1' });
    const again = decideInjection(byAnother, 'shop', [seed], settings);
    assert.equal(again.kind, 'skip');
    assert.equal(first.spec?.initContainers?.filter((c) => c.name === 'net-prober').length, 1);
  });

  it('does not add a second agent to a copy of an injected pod whose token volume is already there', () => {
    const once = injected(decideInjection(pod({ app: 'net-prober' }), 'shop', [seed], settings));
    const copy = structuredClone(once);
    delete copy.metadata!.annotations; // e.g. an injected pod re-created from `kubectl get -o yaml` with annotations dropped
    const decision = decideInjection(copy, 'shop', [seed], settings);
    assert.equal(decision.kind, 'skip');
    assert.equal(decision.kind === 'skip' && decision.reason, 'container_name_taken');
  });

  it('refuses to shadow the user\'s own container named net-prober, with a warning', () => {
    const decision = decideInjection(pod({ app: 'net-prober' }, { containers: [{ name: 'net-prober', image: 'theirs:1' }] }), 'shop', [seed], settings);
    assert.equal(decision.kind, 'skip');
    assert.equal(decision.kind === 'skip' && decision.reason, 'container_name_taken');
    assert.match(decision.warnings.join(), /has a container named net-prober already/);
  });

  it('skips hostNetwork pods, Windows pods, and pods that declare one of the agent\'s ports', () => {
    const cases: Array<[Partial<NonNullable<PodObject['spec']>>, string, RegExp]> = [
      [{ hostNetwork: true }, 'host_network', /hostNetwork/],
      [{ os: { name: 'windows' } }, 'windows', /Windows/],
      [{ containers: [{ name: 'app', image: 'a', ports: [{ containerPort: 1222 }] }] }, 'port_taken', /container app declares port 1222/],
    ];
    for (const [spec, reason, warning] of cases) {
      const decision = decideInjection(pod({ app: 'net-prober' }, spec), 'shop', [seed], settings);
      assert.equal(decision.kind === 'skip' && decision.reason, reason);
      assert.match(decision.warnings.join(), warning);
    }
    const udp = decideInjection(pod({ app: 'net-prober' }, { containers: [{ name: 'dns', image: 'a', ports: [{ containerPort: 9090, protocol: 'UDP' }] }] }), 'shop', [seed], settings);
    assert.equal(udp.kind, 'inject', 'a UDP port of the same number does not clash');
  });

  it('warns about a privileged port', () => {
    const low = prober('p', 'shop', { podSelector: {}, httpPort: 80 });
    const decision = decideInjection(pod({}), 'shop', [low], settings);
    assert.equal(decision.kind, 'inject');
    assert.match(decision.warnings.join(), /below 1024/);
  });
});
