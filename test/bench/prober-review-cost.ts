/**
 * The prober webhook's CPU time per review (this process's, so other load on the machine counts little), in one process and without the network: decode the
 * AdmissionReview, decide, encode the answer with its JSON Patch, for a pod as the API server
 * sends it (defaults and the ServiceAccount's volume filled in). `node --cpu-prof` on this
 * shows where a review's time goes.
 *   node test/bench/prober-review-cost.ts [reviews]
 */
import { decodeAdmissionReview, encodeAdmissionResponse } from '../../src/kube/webhook/review.ts';
import { storedProber } from '../../src/prober/fixtures.ts';
import { DEFAULT_AGENT_RESOURCES } from '../../src/prober/inject.ts';
import { proberWebhook } from '../../src/prober/webhook.ts';

/** A pod create as the API server sends it to a mutating webhook: defaulted, with the ServiceAccount's token volume. */
export function admissionReviewBody(uid: string): string {
  return JSON.stringify({
    apiVersion: 'admission.k8s.io/v1', kind: 'AdmissionReview',
    request: {
      uid, kind: { group: '', version: 'v1', kind: 'Pod' }, resource: { group: '', version: 'v1', resource: 'pods' },
      requestKind: { group: '', version: 'v1', kind: 'Pod' }, requestResource: { group: '', version: 'v1', resource: 'pods' },
      name: `web-${uid}`, namespace: 'shop', operation: 'CREATE',
      userInfo: { username: 'kubernetes-admin', groups: ['kubeadm:cluster-admins', 'system:authenticated'] },
      object: {
        kind: 'Pod', apiVersion: 'v1',
        metadata: { name: `web-${uid}`, namespace: 'shop', labels: { app: 'web' }, creationTimestamp: null, managedFields: [{ manager: 'bench', operation: 'Update', apiVersion: 'v1', time: '2026-01-01T00:00:00Z', fieldsType: 'FieldsV1', fieldsV1: { 'f:metadata': { 'f:labels': { '.': {}, 'f:app': {} } }, 'f:spec': { 'f:containers': { 'k:{"name":"app"}': { '.': {}, 'f:image': {}, 'f:imagePullPolicy': {}, 'f:name': {}, 'f:resources': {}, 'f:terminationMessagePath': {}, 'f:terminationMessagePolicy': {} } }, 'f:dnsPolicy': {}, 'f:enableServiceLinks': {}, 'f:restartPolicy': {}, 'f:schedulerName': {}, 'f:securityContext': {}, 'f:terminationGracePeriodSeconds': {} } } }] },
        spec: {
          volumes: [{ name: 'kube-api-access-abcde', projected: { sources: [{ serviceAccountToken: { expirationSeconds: 3607, path: 'token' } }, { configMap: { name: 'kube-root-ca.crt', items: [{ key: 'ca.crt', path: 'ca.crt' }] } }, { downwardAPI: { items: [{ path: 'namespace', fieldRef: { apiVersion: 'v1', fieldPath: 'metadata.namespace' } }] } }], defaultMode: 420 } }],
          containers: [{ name: 'app', image: 'registry.invalid/app:1', resources: {}, volumeMounts: [{ name: 'kube-api-access-abcde', readOnly: true, mountPath: '/var/run/secrets/kubernetes.io/serviceaccount' }], terminationMessagePath: '/dev/termination-log', terminationMessagePolicy: 'File', imagePullPolicy: 'IfNotPresent' }],
          restartPolicy: 'Always', terminationGracePeriodSeconds: 30, dnsPolicy: 'ClusterFirst', serviceAccountName: 'default', serviceAccount: 'default', securityContext: {}, schedulerName: 'default-scheduler',
          tolerations: [{ key: 'node.kubernetes.io/not-ready', operator: 'Exists', effect: 'NoExecute', tolerationSeconds: 300 }, { key: 'node.kubernetes.io/unreachable', operator: 'Exists', effect: 'NoExecute', tolerationSeconds: 300 }],
          priority: 0, enableServiceLinks: true, preemptionPolicy: 'PreemptLowerPriority',
        },
        status: {},
      },
      oldObject: null, dryRun: false, options: { kind: 'CreateOptions', apiVersion: 'meta.k8s.io/v1', fieldManager: 'bench' },
    },
  });
}

const reviews = Number(process.argv[2] ?? '20000');
const probers = [storedProber('bench', 'shop', { podSelector: { matchLabels: { app: 'web' } } })];
const handler = proberWebhook({
  probersIn: (namespace) => probers.filter((p) => p.metadata?.namespace === namespace),
  settings: () => ({ defaultImage: 'registry.invalid/crowsnest:bench', peersUrl: 'https://10.0.0.1:9444', caBundle: '-----BEGIN CERTIFICATE-----\nMIIB...\n-----END CERTIFICATE-----\n', defaultResources: DEFAULT_AGENT_RESOURCES }),
  excludedNamespaces: ['crowsnest-system'],
});
const signal = new AbortController().signal;
const bodies = Array.from({ length: 100 }, (_, i) => admissionReviewBody(`u${i}`));
let bytes = 0;
const cpuBefore = process.cpuUsage();
for (let i = 0; i < reviews; i++) {
  const request = decodeAdmissionReview(bodies[i % bodies.length]!);
  const result = await handler.review(request, signal);
  bytes += JSON.stringify(encodeAdmissionResponse(request, result)).length;
}
const cpu = process.cpuUsage(cpuBefore);
console.log(JSON.stringify({ reviews, cpuMicrosecondsPerReview: Number(((cpu.user + cpu.system) / reviews).toFixed(1)), answerBytes: Math.round(bytes / reviews), requestBytes: bodies[0]!.length }));
