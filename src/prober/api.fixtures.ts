/**
 * NetworkProber specs that must be accepted or refused, judged twice: by our validator
 * (`api.test.ts`) and by the testbed's API server with the generated CRD
 * (`test/integration/crd-validation.test.ts`). A refused spec names the field and the rule a
 * user has to read in the API server's message.
 */

import type { InvalidFixture, ValidFixture } from '../kube/api/fixtures.ts';
export type { InvalidFixture, ValidFixture };

const selector = { matchLabels: { app: 'db' } };

export const validSpecs: readonly ValidFixture[] = [
  {
    name: 'a seed manifest: ports as strings, as k8s-network-prober-operator wrote them',
    spec: { podSelector: { matchLabels: { app: 'net-prober' } }, httpPort: '8081', pollingPeriod: '10s', httpPrometheusPort: '9090', agentImage: 'bigmikes/net-prober:test-version-v9' },
  },
  { name: 'only a selector: everything else defaulted', spec: { podSelector: selector } },
  { name: 'an empty selector (every pod of the namespace)', spec: { podSelector: {} } },
  {
    name: 'everything set, ports as integers',
    spec: {
      podSelector: { matchLabels: { app: 'db' }, matchExpressions: [{ key: 'tier', operator: 'In', values: ['backend', 'cache'] }, { key: 'canary', operator: 'DoesNotExist' }] },
      httpPort: 8080, httpPrometheusPort: 65535, pollingPeriod: '1m30s', timeout: '500ms', neighbours: 1000,
      agentImage: 'registry.example:5000/crowsnest@sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef',
      resources: { requests: { cpu: '10m', memory: '32Mi' }, limits: { cpu: 1, memory: '64Mi' } },
    },
  },
  { name: 'the highest port as a string, requests without limits', spec: { podSelector: selector, httpPort: '65535', resources: { requests: { cpu: '0.5', memory: '1e6' } } } },
  { name: 'a request equal to its limit', spec: { podSelector: selector, resources: { requests: { memory: '1Gi' }, limits: { memory: '1024Mi' } } } },
];

const portRule = /port number from 1 to 65535/;

export const invalidSpecs: readonly InvalidFixture[] = [
  { name: 'no podSelector', spec: { httpPort: 8080 }, field: 'spec.podSelector', rule: /Required value/ },
  { name: 'port 0', spec: { podSelector: selector, httpPort: 0 }, field: 'spec.httpPort', rule: portRule },
  { name: 'port 70000', spec: { podSelector: selector, httpPort: 70000 }, field: 'spec.httpPort', rule: portRule },
  { name: 'port "70000" as a string', spec: { podSelector: selector, httpPrometheusPort: '70000' }, field: 'spec.httpPrometheusPort', rule: portRule },
  { name: 'a port name instead of a number', spec: { podSelector: selector, httpPort: 'http' }, field: 'spec.httpPort', rule: portRule },
  { name: 'a port with a leading zero', spec: { podSelector: selector, httpPort: '08080' }, field: 'spec.httpPort', rule: portRule },
  { name: 'a port that is neither integer nor string', spec: { podSelector: selector, httpPort: true }, field: 'spec.httpPort', rule: /integer.*string/ },
  { name: 'the same port twice (one as string, one as integer)', spec: { podSelector: selector, httpPort: '9090', httpPrometheusPort: 9090 }, field: 'spec.httpPrometheusPort', rule: /httpPort and httpPrometheusPort must be different/ },
  { name: 'the metrics port on the default probe port', spec: { podSelector: selector, httpPrometheusPort: 19080 }, field: 'spec.httpPrometheusPort', rule: /httpPort and httpPrometheusPort must be different/ },
  { name: 'a polling period without a unit', spec: { podSelector: selector, pollingPeriod: '10' }, field: 'spec.pollingPeriod', rule: /must be a duration from 1s to 1h/ },
  { name: 'a polling period below 1s', spec: { podSelector: selector, pollingPeriod: '500ms' }, field: 'spec.pollingPeriod', rule: /must be a duration from 1s to 1h/ },
  { name: 'a polling period in days', spec: { podSelector: selector, pollingPeriod: '1d' }, field: 'spec.pollingPeriod', rule: /must be a duration from 1s to 1h/ },
  { name: 'a timeout longer than the default period', spec: { podSelector: selector, timeout: '20s' }, field: 'spec.timeout', rule: /timeout must be shorter than pollingPeriod/ },
  { name: 'a timeout equal to the period', spec: { podSelector: selector, timeout: '5s', pollingPeriod: '5s' }, field: 'spec.timeout', rule: /timeout must be shorter than pollingPeriod/ },
  { name: 'no neighbours', spec: { podSelector: selector, neighbours: 0 }, field: 'spec.neighbours', rule: /greater than or equal to 1/ },
  { name: 'neighbours as a string', spec: { podSelector: selector, neighbours: '10' }, field: 'spec.neighbours', rule: /must be of type integer/ },
  { name: 'an unknown selector operator', spec: { podSelector: { matchExpressions: [{ key: 'a', operator: 'Equals', values: ['b'] }] } }, field: 'spec.podSelector.matchExpressions[0].operator', rule: /Unsupported value.*"In"/ },
  { name: 'operator In without values', spec: { podSelector: { matchExpressions: [{ key: 'a', operator: 'In' }] } }, field: 'spec.podSelector.matchExpressions[0]', rule: /values must be given for operator In and NotIn/ },
  { name: 'operator Exists with values', spec: { podSelector: { matchExpressions: [{ key: 'a', operator: 'Exists', values: ['b'] }] } }, field: 'spec.podSelector.matchExpressions[0]', rule: /left out for Exists and DoesNotExist/ },
  { name: 'an empty image', spec: { podSelector: selector, agentImage: '' }, field: 'spec.agentImage', rule: /at least 1 chars long/ },
  { name: 'an image with a space', spec: { podSelector: selector, agentImage: 'crowsnest latest' }, field: 'spec.agentImage', rule: /image reference without spaces/ },
  { name: 'a request above its limit', spec: { podSelector: selector, resources: { requests: { cpu: '2' }, limits: { cpu: '1500m' } } }, field: 'spec.resources', rule: /request must be no more than the limit/ },
  { name: 'a quantity that is not one', spec: { podSelector: selector, resources: { limits: { memory: 'lots' } } }, field: 'spec.resources.limits[memory]', rule: /non-negative quantity/ },
  { name: 'a negative quantity', spec: { podSelector: selector, resources: { requests: { cpu: '-1' } } }, field: 'spec.resources.requests[cpu]', rule: /non-negative quantity/ },
  { name: 'the old seed field httpTargets', spec: { podSelector: selector, httpTargets: ['http://test'] }, field: 'spec.httpTargets', rule: /unknown field/ },
];

/** A whole object around a fixture's spec. */
export function proberObject(name: string, namespace: string, spec: Record<string, unknown>): Record<string, unknown> {
  return { apiVersion: 'crowsnest.dev/v1alpha1', kind: 'NetworkProber', metadata: { name, namespace }, spec };
}
