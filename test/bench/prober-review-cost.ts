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
import { admissionReviewBody } from './admission-review.fixture.ts';

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
