/**
 * GuardPolicy specs that must be accepted or refused, judged twice: by our validator
 * (`api.test.ts`) and by the testbed's API server with the generated CRD
 * (`test/integration/crd-validation.test.ts`). A refused spec names the field and the rule a
 * user has to read in the API server's message.
 */

import type { InvalidFixture, ValidFixture } from '../kube/api/fixtures.ts';
export type { InvalidFixture, ValidFixture };

const targets = { podSelector: { matchLabels: { app: 'web' } } };
const crash = { crashLoop: {} };

export const validGuardSpecs: readonly ValidFixture[] = [
  { name: 'a selector and one detector: everything else defaulted', spec: { targets, detectors: crash } },
  {
    name: 'everything set',
    spec: {
      targets: { podSelector: { matchExpressions: [{ key: 'app', operator: 'In', values: ['web', 'api'] }] }, groupBy: ['app', 'app.kubernetes.io/component'] },
      detectors: {
        crashLoop: { restarts: 2, window: '30s' },
        oomKilled: { kills: 1, window: '1h' },
        health: { failures: 5, window: '2m' },
        errorLogs: { pattern: 'error|panic', ignoreCase: false, lines: 100, window: '1m', containers: ['app'] },
        anomaly: { signal: 'errorLogs', zScore: 2.5, halfLife: '10m', minSamples: 20 },
        undeclaredPort: {},
      },
      actions: ['Isolate', 'Event', 'Quarantine', 'Preventive'],
      preventive: { restartSimilar: false },
      quarantine: { ttl: '1h', onExpiry: 'Release', maxQuarantined: '34%' },
      cooldown: '0s',
      dryRun: true,
    },
  },
  { name: 'evict instead of quarantine', spec: { targets, detectors: { oomKilled: {} }, actions: ['Event', 'Evict'] } },
  { name: 'quarantine disabled by a zero maximum', spec: { targets, detectors: crash, actions: ['Quarantine'], quarantine: { maxQuarantined: 0 } } },
  { name: 'an empty selector (every pod of the namespace) and a threat detector only', spec: { targets: { podSelector: {} }, detectors: { undeclaredPort: {} } } },
  { name: 'a 100% quarantine maximum', spec: { targets, detectors: crash, quarantine: { maxQuarantined: '100%' } } },
];

export const invalidGuardSpecs: readonly InvalidFixture[] = [
  { name: 'no targets', spec: { detectors: crash }, field: 'spec.targets', rule: /Required value/ },
  { name: 'no detectors', spec: { targets }, field: 'spec.detectors', rule: /Required value/ },
  { name: 'an empty detectors object', spec: { targets, detectors: {} }, field: 'spec.detectors', rule: /name at least one detector/ },
  { name: 'Quarantine and Evict together', spec: { targets, detectors: crash, actions: ['Quarantine', 'Evict'] }, field: 'spec.actions', rule: /Quarantine and Evict exclude each other/ },
  { name: 'Isolate without Quarantine', spec: { targets, detectors: crash, actions: ['Event', 'Isolate'] }, field: 'spec.actions', rule: /Isolate needs Quarantine/ },
  { name: 'an unknown action', spec: { targets, detectors: crash, actions: ['ScaleToZero'] }, field: 'spec.actions[0]', rule: /Unsupported value.*"Event"/ },
  { name: 'an action twice', spec: { targets, detectors: crash, actions: ['Event', 'Event'] }, field: 'spec.actions', rule: /must not name the same action twice/ },
  { name: 'a window without a unit', spec: { targets, detectors: { crashLoop: { window: '600' } } }, field: 'spec.detectors.crashLoop.window', rule: /must be a duration from 10s to 24h/ },
  { name: 'a window of a second', spec: { targets, detectors: { crashLoop: { window: '1s' } } }, field: 'spec.detectors.crashLoop.window', rule: /must be a duration from 10s to 24h/ },
  { name: 'zero restarts', spec: { targets, detectors: { crashLoop: { restarts: 0 } } }, field: 'spec.detectors.crashLoop.restarts', rule: /greater than or equal to 1/ },
  { name: 'maxQuarantined as a negative count', spec: { targets, detectors: crash, quarantine: { maxQuarantined: -1 } }, field: 'spec.quarantine.maxQuarantined', rule: /count such as 1, or a percentage/ },
  { name: 'maxQuarantined above 100%', spec: { targets, detectors: crash, quarantine: { maxQuarantined: '150%' } }, field: 'spec.quarantine.maxQuarantined', rule: /count such as 1, or a percentage/ },
  { name: 'maxQuarantined as a word', spec: { targets, detectors: crash, quarantine: { maxQuarantined: 'one' } }, field: 'spec.quarantine.maxQuarantined', rule: /count such as 1, or a percentage/ },
  { name: 'an unknown expiry', spec: { targets, detectors: crash, quarantine: { onExpiry: 'Keep' } }, field: 'spec.quarantine.onExpiry', rule: /Unsupported value.*"Release"/ },
  { name: 'a ttl in days', spec: { targets, detectors: crash, quarantine: { ttl: '2d' } }, field: 'spec.quarantine.ttl', rule: /must be a duration from 10s to 720h/ },
  { name: 'an anomaly on error logs without the errorLogs detector', spec: { targets, detectors: { anomaly: { signal: 'errorLogs' } } }, field: 'spec.detectors.anomaly.signal', rule: /needs the errorLogs detector/ },
  { name: 'an anomaly on health failures without the health detector', spec: { targets, detectors: { anomaly: { signal: 'healthFailures' } } }, field: 'spec.detectors.anomaly.signal', rule: /needs the health detector/ },
  { name: 'a z-score below 1', spec: { targets, detectors: { anomaly: { zScore: 0.5 } } }, field: 'spec.detectors.anomaly.zScore', rule: /greater than or equal to 1/ },
  { name: 'a groupBy key that is no label key', spec: { targets: { ...targets, groupBy: ['not a key'] }, detectors: crash }, field: 'spec.targets.groupBy[0]', rule: /must be a label key/ },
  { name: 'a detector the API does not know', spec: { targets, detectors: { ...crash, cpuSpike: {} } }, field: 'spec.detectors.cpuSpike', rule: /unknown field/ },
  { name: 'the seed\'s scale-to-zero quarantine field', spec: { targets, detectors: crash, replicas: 0 }, field: 'spec.replicas', rule: /unknown field/ },
  { name: 'a negative cooldown', spec: { targets, detectors: crash, cooldown: '-5m' }, field: 'spec.cooldown', rule: /must be a duration from 0s to 24h/ },
];

/** A whole object around a fixture's spec. */
export function guardPolicyObject(name: string, namespace: string, spec: Record<string, unknown>): Record<string, unknown> {
  return { apiVersion: 'crowsnest.dev/v1alpha1', kind: 'GuardPolicy', metadata: { name, namespace }, spec };
}
