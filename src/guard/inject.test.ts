import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import type { PodObject } from '../kube/webhook/sidecar-injection.ts';
import { applyPatch, createPatch } from '../kube/webhook/jsonpatch.ts';
import { type GuardPolicy, GuardPolicyApi } from './api.ts';
import { parseDeclaredPorts } from './sidecar/config.ts';
import { decideSidecarInjection, declaredPorts, DEFAULT_SIDECAR_RESOURCES, type SelectingGuardPolicy, type SidecarInjectionSettings } from './inject.ts';

const settings: SidecarInjectionSettings = {
  image: 'registry.example/crowsnest:0.1.0',
  signalsUrl: 'https://crowsnest-guard.crowsnest-system.svc:9445',
  caBundle: '-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n',
};

/** A GuardPolicy as the API server stores it (defaults applied by guard's API), which injection reads as is. */
function policy(name: string, namespace: string, podSelector: object, detectors: object = { health: { failures: 3, window: '2m' } }): GuardPolicy {
  const result = GuardPolicyApi.validate({ apiVersion: 'crowsnest.dev/v1alpha1', kind: 'GuardPolicy', metadata: { name, namespace, uid: `${name}-uid` }, spec: { targets: { podSelector }, detectors } });
  if (!result.valid) throw new Error(JSON.stringify(result.errors));
  return result.value satisfies SelectingGuardPolicy;
}

function pod(labels: Record<string, string>, spec: Partial<NonNullable<PodObject['spec']>> = {}): PodObject {
  return {
    apiVersion: 'v1', kind: 'Pod', metadata: { generateName: 'web-', labels },
    spec: { containers: [{ name: 'app', image: 'app:1', ports: [{ name: 'http', containerPort: 8080 }, { containerPort: 9000, protocol: 'UDP' }] }], ...spec },
  };
}

const web = policy('web', 'shop', { matchLabels: { app: 'web' } });

type Sidecar = {
  name: string; image: string; args: string[]; restartPolicy: string;
  env: Array<{ name: string; value?: string; valueFrom?: { fieldRef: { fieldPath: string } } }>;
  ports: unknown[]; resources: unknown; securityContext: Record<string, unknown>; readinessProbe: { httpGet: unknown };
  volumeMounts: unknown[];
};

function injected(decision: ReturnType<typeof decideSidecarInjection>): PodObject {
  assert.equal(decision.kind, 'inject', JSON.stringify(decision));
  if (decision.kind !== 'inject') throw new Error('unreachable');
  return decision.pod;
}

function sidecarOf(p: PodObject): Sidecar {
  const sidecar = p.spec?.initContainers?.find((c) => c.name === 'crowsnest-guard');
  assert.ok(sidecar, 'crowsnest-guard init container');
  return sidecar as unknown as Sidecar;
}

describe('decideSidecarInjection: which pods get the health sidecar', () => {
  it('injects a pod a GuardPolicy of its own namespace selects, naming the policy', () => {
    const result = injected(decideSidecarInjection(pod({ app: 'web' }), 'shop', [web], settings));
    assert.equal(result.metadata?.annotations?.['guard.crowsnest.dev/policy'], 'web');
    assert.deepEqual(result.metadata?.labels, { app: 'web' }, 'labels untouched');
  });

  it('does not inject a pod of another namespace, even with matching labels', () => {
    assert.deepEqual(decideSidecarInjection(pod({ app: 'web' }), 'billing', [web], settings), { kind: 'skip', reason: 'not_selected', warnings: [] });
  });

  it('honours the whole LabelSelector (matchExpressions too), and ignores a policy being deleted', () => {
    const db = policy('db', 'shop', { matchLabels: { app: 'db' }, matchExpressions: [{ key: 'role', operator: 'NotIn', values: ['backup'] }] });
    assert.equal(decideSidecarInjection(pod({ app: 'db', role: 'backup' }), 'shop', [db], settings).kind, 'skip');
    assert.equal(decideSidecarInjection(pod({ app: 'db', role: 'primary' }), 'shop', [db], settings).kind, 'inject');
    const deleting = { ...web, metadata: { ...web.metadata, deletionTimestamp: '2026-01-01T00:00:00Z' } };
    assert.equal(decideSidecarInjection(pod({ app: 'web' }), 'shop', [deleting], settings).kind, 'skip');
  });

  it('injects only for a policy whose detectors read the sidecar (health or undeclaredPort)', () => {
    const logsOnly = policy('logs', 'shop', {}, { errorLogs: { pattern: 'error' }, crashLoop: {} });
    assert.deepEqual(decideSidecarInjection(pod({ app: 'web' }), 'shop', [logsOnly], settings), { kind: 'skip', reason: 'sidecar_not_needed', warnings: [] });
    const threat = policy('threat', 'shop', {}, { undeclaredPort: {} });
    assert.equal(decideSidecarInjection(pod({ app: 'web' }), 'shop', [logsOnly, threat], settings).kind, 'inject');
  });

  it('names the first policy by name when several select the pod, and says so', () => {
    const b = policy('b-policy', 'shop', {});
    const a = policy('a-policy', 'shop', { matchLabels: { app: 'web' } });
    const decision = decideSidecarInjection(pod({ app: 'web' }), 'shop', [b, a], settings);
    assert.equal(decision.kind === 'inject' && decision.policy, 'a-policy');
    assert.match(decision.warnings.join(), /selected by 2 GuardPolicies .* \(a-policy, b-policy\); its health sidecar is a-policy's/);
  });
});

describe('decideSidecarInjection: the injected sidecar', () => {
  it('is a native sidecar appended after the pod\'s own init containers, running `crowsnest sidecar`', () => {
    const result = injected(decideSidecarInjection(pod({ app: 'web' }, { initContainers: [{ name: 'migrate', image: 'm:1' }] }), 'shop', [web], settings));
    assert.deepEqual(result.spec?.initContainers?.map((c) => c.name), ['migrate', 'crowsnest-guard']);
    const sidecar = sidecarOf(result);
    assert.equal(sidecar.restartPolicy, 'Always');
    assert.deepEqual(sidecar.args, ['sidecar']);
    assert.equal(sidecar.image, settings.image);
    assert.deepEqual(sidecar.ports, [{ name: 'guard-metrics', containerPort: 19091, protocol: 'TCP' }]);
  });

  it('gets the environment of contract.ts, the declared ports included, which the sidecar reads back', () => {
    const sidecar = sidecarOf(injected(decideSidecarInjection(pod({ app: 'web' }), 'shop', [web], settings)));
    const env = Object.fromEntries(sidecar.env.map((e) => [e.name, e.value ?? `fieldRef:${e.valueFrom?.fieldRef.fieldPath}`]));
    assert.deepEqual(env, {
      CROWSNEST_POD_NAME: 'fieldRef:metadata.name',
      CROWSNEST_POD_NAMESPACE: 'fieldRef:metadata.namespace',
      CROWSNEST_POD_IP: 'fieldRef:status.podIP',
      CROWSNEST_NODE_NAME: 'fieldRef:spec.nodeName',
      CROWSNEST_GUARD_POLICY: 'web',
      CROWSNEST_GUARD_URL: settings.signalsUrl,
      CROWSNEST_GUARD_CA: settings.caBundle,
      CROWSNEST_GUARD_TOKEN_FILE: '/var/run/secrets/crowsnest.dev/guard/token',
      CROWSNEST_GUARD_DECLARED_PORTS: '[{"container":"app","port":8080,"protocol":"TCP","name":"http"},{"container":"app","port":9000,"protocol":"UDP"}]',
      CROWSNEST_GUARD_METRICS_PORT: '19091',
      NODE_OPTIONS: '--max-semi-space-size=1 --max-old-space-size=48 --jitless',
    });
    assert.deepEqual(parseDeclaredPorts(env['CROWSNEST_GUARD_DECLARED_PORTS']), [
      { container: 'app', port: 8080, protocol: 'TCP', name: 'http' }, { container: 'app', port: 9000, protocol: 'UDP' },
    ]);
  });

  it('declares the ports of app containers and native sidecars, not of init containers that have exited', () => {
    const p = pod({ app: 'web' }, {
      initContainers: [{ name: 'setup', image: 's', ports: [{ containerPort: 1111 }] }, { name: 'proxy', image: 'p', restartPolicy: 'Always', ports: [{ containerPort: 15001 }] }],
    });
    assert.deepEqual(declaredPorts(p).map((d) => `${d.container}:${d.port}/${d.protocol}`), ['proxy:15001/TCP', 'app:8080/TCP', 'app:9000/UDP']);
  });

  it('has resources (no CPU limit), runs restricted, is ready when its servers listen, and mounts a guard-only token', () => {
    const result = injected(decideSidecarInjection(pod({ app: 'web' }, { volumes: [{ name: 'data', emptyDir: {} }] }), 'shop', [web], settings));
    const sidecar = sidecarOf(result);
    assert.deepEqual(sidecar.resources, DEFAULT_SIDECAR_RESOURCES);
    assert.deepEqual(sidecar.securityContext, {
      runAsNonRoot: true, runAsUser: 65532, runAsGroup: 65532, allowPrivilegeEscalation: false, readOnlyRootFilesystem: true,
      capabilities: { drop: ['ALL'] }, seccompProfile: { type: 'RuntimeDefault' },
    });
    assert.deepEqual(sidecar.readinessProbe.httpGet, { path: '/readyz', port: 'guard-metrics' });
    assert.deepEqual(result.spec?.volumes, [
      { name: 'data', emptyDir: {} },
      { name: 'crowsnest-guard-token', projected: { sources: [{ serviceAccountToken: { audience: 'crowsnest.dev/guard', expirationSeconds: 600, path: 'token' } }] } },
    ]);
    assert.deepEqual(sidecar.volumeMounts, [{ name: 'crowsnest-guard-token', mountPath: '/var/run/secrets/crowsnest.dev/guard', readOnly: true }]);
  });

  it('uses the operator\'s metrics port, resources and probe timing when set', () => {
    const sidecar = sidecarOf(injected(decideSidecarInjection(pod({ app: 'web' }), 'shop', [web], {
      ...settings, metricsPort: 29091, resources: { limits: { memory: '96Mi' } }, probePeriod: '2s', probeTimeout: '500ms',
    })));
    const env = Object.fromEntries(sidecar.env.map((e) => [e.name, e.value]));
    assert.deepEqual([env['CROWSNEST_GUARD_PROBE_PERIOD'], env['CROWSNEST_GUARD_PROBE_TIMEOUT'], env['CROWSNEST_GUARD_METRICS_PORT']], ['2s', '500ms', '29091']);
    assert.deepEqual(sidecar.ports, [{ name: 'guard-metrics', containerPort: 29091, protocol: 'TCP' }]);
    assert.deepEqual(sidecar.resources, { limits: { memory: '96Mi' } });
  });

  it('never changes the pod it was given', () => {
    const original = pod({ app: 'web' });
    const copy = structuredClone(original);
    decideSidecarInjection(original, 'shop', [web], settings);
    assert.deepEqual(original, copy);
  });
});

describe('decideSidecarInjection: idempotent and careful', () => {
  it('leaves an injected pod alone when called again, also after another webhook changed it (reinvocation)', () => {
    const original = pod({ app: 'web' });
    const first = applyPatch(original, createPatch(original, injected(decideSidecarInjection(original, 'shop', [web], settings))));
    assert.deepEqual(decideSidecarInjection(first, 'shop', [web], settings), { kind: 'skip', reason: 'already_injected', warnings: [] });
    const byAnother = structuredClone(first);
    byAnother.spec!.containers!.push({ name: 'mesh-proxy', image: 'proxy:1' });
    assert.equal(decideSidecarInjection(byAnother, 'shop', [web], settings).kind, 'skip');
    assert.equal(first.spec?.initContainers?.filter((c) => c.name === 'crowsnest-guard').length, 1);
  });

  it('refuses to shadow the user\'s own container of that name, with a warning', () => {
    const decision = decideSidecarInjection(pod({ app: 'web' }, { containers: [{ name: 'crowsnest-guard', image: 'theirs:1' }] }), 'shop', [web], settings);
    assert.equal(decision.kind === 'skip' && decision.reason, 'container_name_taken');
    assert.match(decision.warnings.join(), /has a container named crowsnest-guard already; GuardPolicy web cannot inject its health sidecar/);
  });

  it('skips hostNetwork pods, Windows pods, and pods that declare the sidecar\'s metrics port, with a warning', () => {
    const cases: Array<[Partial<NonNullable<PodObject['spec']>>, string, RegExp]> = [
      [{ hostNetwork: true }, 'host_network', /GuardPolicy web does not inject hostNetwork pods/],
      [{ os: { name: 'windows' } }, 'windows', /Windows/],
      [{ containers: [{ name: 'app', image: 'a', ports: [{ containerPort: 19091 }] }] }, 'port_taken', /container app declares port 19091, which GuardPolicy web gives its health sidecar/],
    ];
    for (const [spec, reason, warning] of cases) {
      const decision = decideSidecarInjection(pod({ app: 'web' }, spec), 'shop', [web], settings);
      assert.equal(decision.kind === 'skip' && decision.reason, reason);
      assert.match(decision.warnings.join(), warning);
    }
  });
});
