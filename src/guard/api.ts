/**
 * The GuardPolicy API (`crowsnest.dev/v1alpha1`, namespaced): which pods of its namespace guard
 * watches and how it groups them, the detectors that open an incident, the ladder of actions an
 * incident takes, and the rails that bound them. The status keeps the open incidents with their
 * evidence and every action taken (or, in dry run, that would have been taken).
 *
 * The ladder's order is fixed by the API, whatever order `actions` lists them in:
 * Event → Quarantine → Isolate → Preventive → Evict. Quarantine keeps the pod for forensics while
 * its owner replaces it; Evict removes the pod through the Eviction API (PDB-respecting) so the
 * scheduler places it elsewhere: the two contradict each other for one pod, and a policy naming
 * both is refused. Isolate applies to a quarantined pod only, so it needs Quarantine.
 *
 * The CRD in deploy/helm/crowsnest/crds/ is generated from this file (`make crds`).
 */
import { type ApiObject, type ApiSpec, type ApiStatus, defineApi } from '../kube/api/define.ts';
import { conditions, duration, intOrString, labelSelector, Type, withRules } from '../kube/api/schema.ts';

/** The ladder, in the order an incident climbs it. */
export const GUARD_ACTIONS = ['Event', 'Quarantine', 'Isolate', 'Preventive', 'Evict'] as const;
export type GuardAction = (typeof GUARD_ACTIONS)[number];

/** The detectors, named as their `spec.detectors` keys (and as `status.incidents[].detector`). */
export const DETECTORS = ['crashLoop', 'oomKilled', 'health', 'errorLogs', 'anomaly', 'undeclaredPort'] as const;
export type DetectorName = (typeof DETECTORS)[number];

/** What an anomaly detector measures against the group's own baseline. */
export const ANOMALY_SIGNALS = ['errorLogs', 'restarts', 'healthFailures'] as const;
export type AnomalySignal = (typeof ANOMALY_SIGNALS)[number];

const count = (description: string, defaultValue: number, maximum = 10_000) =>
  Type.Optional(Type.Integer({ description, minimum: 1, maximum, default: defaultValue }));

const window = (description: string, defaultValue: string) =>
  Type.Optional(duration({ description, min: '10s', max: '24h', default: defaultValue }));

/** A label key (optionally prefixed): the syntax the API server checks for pod labels. */
const LABEL_KEY_SOURCE = '^([a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*/)?[A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?$';
const LABEL_KEY = new RegExp(LABEL_KEY_SOURCE);

const labelKey = () => withRules(Type.String({ description: 'A label key, such as app or app.kubernetes.io/name.', minLength: 1, maxLength: 317 }), [{
  rule: `self.matches('${LABEL_KEY_SOURCE.replaceAll('\\', '\\\\')}')`,
  message: 'must be a label key such as app or app.kubernetes.io/name',
  check: (self) => LABEL_KEY.test(self),
}]);

const unique = <T>(what: string) => ({
  rule: 'self.all(x, self.exists_one(y, y == x))',
  message: `must not name the same ${what} twice`,
  check: (self: readonly T[]) => new Set(self).size === self.length,
});

const targets = Type.Object({
  podSelector: labelSelector({
    description: 'Pods of this namespace that guard watches. matchLabels and matchExpressions are both honoured; {} selects every pod of the namespace.',
  }),
  groupBy: Type.Optional(withRules(Type.Array(labelKey(), {
    description: 'Label keys whose values make pods "similar" (one group per combination of values): rails, baselines and preventive actions work per group. Default: pods of the same controlling owner (ReplicaSet, StatefulSet, ...) form a group.',
    maxItems: 8,
  }), [unique<string>('label key')])),
}, { description: 'The pods guard watches and how it groups them.' });

const crashLoop = Type.Object({
  restarts: count('Container restarts of one pod within the window that open an incident.', 3, 1000),
  window: window('How far back restarts are counted, e.g. "10m".', '10m'),
}, { description: 'A pod whose containers keep restarting (CrashLoopBackOff): restarts counted from the pod status.' });

const oomKilled = Type.Object({
  kills: count('OOM kills (a container\'s last termination reason OOMKilled) of one pod within the window that open an incident.', 1, 1000),
  window: window('How far back OOM kills are counted.', '30m'),
}, { description: 'A container killed for exceeding its memory limit.' });

const health = Type.Object({
  failures: count('Failed probes of the pod\'s declared ports, reported by the health sidecar, within the window that open an incident.', 3),
  window: window('How far back failed probes are counted.', '2m'),
}, { description: 'Health probes failing, as the injected health sidecar reports them.' });

const errorLogs = Type.Object({
  pattern: Type.Optional(Type.String({
    description: 'Regular expression a log line must match to count as an error (RE2 syntax that JavaScript also reads: no lookbehind, no backreferences; case-insensitive as a whole with ignoreCase).',
    minLength: 1, maxLength: 1024, default: 'error|panic|fatal',
  })),
  ignoreCase: Type.Optional(Type.Boolean({ description: 'Match the pattern without regard to case.', default: true })),
  lines: count('Matching lines of one pod within the window that open an incident.', 20, 1_000_000),
  window: window('How far back matching lines are counted.', '1m'),
  containers: Type.Optional(withRules(Type.Array(Type.String({ minLength: 1, maxLength: 63 }), {
    description: 'Containers whose logs are read. Empty: every container of the pod.', maxItems: 32,
  }), [unique<string>('container')])),
}, { description: 'Lines matching a pattern in the pod\'s logs, counted by the node log agent.' });

const anomaly = Type.Object({
  signal: Type.Optional(Type.Enum([...ANOMALY_SIGNALS], {
    description: 'What is measured per pod and compared with the group: errorLogs (matching lines per minute; needs detectors.errorLogs), restarts (restarts per minute), healthFailures (failed probes per minute; needs detectors.health).',
    default: 'restarts',
  })),
  zScore: Type.Optional(Type.Number({ description: 'How many standard deviations above the group\'s moving average a pod\'s rate must be to open an incident.', minimum: 1, maximum: 100, default: 3 })),
  halfLife: Type.Optional(duration({ description: 'Half-life of the exponentially weighted moving average and variance of the group\'s baseline.', min: '10s', max: '24h', default: '15m' })),
  minSamples: count('Samples the baseline needs before it may judge a pod (until then the detector stays silent).', 10, 100_000),
}, { description: 'A pod\'s rate far above its group\'s own baseline (EWMA and z-score).' });

const undeclaredPort = Type.Object({}, {
  description: 'A threat signal: a process in the pod listens on a port no container of the pod declares (read by the health sidecar from the pod\'s /proc/net tables).',
});

const detectors = withRules(Type.Object({
  crashLoop: Type.Optional(crashLoop),
  oomKilled: Type.Optional(oomKilled),
  health: Type.Optional(health),
  errorLogs: Type.Optional(errorLogs),
  anomaly: Type.Optional(anomaly),
  undeclaredPort: Type.Optional(undeclaredPort),
}, { description: 'What opens an incident; each detector is on when present ({} takes its defaults).' }), [
  {
    rule: 'has(self.crashLoop) || has(self.oomKilled) || has(self.health) || has(self.errorLogs) || has(self.anomaly) || has(self.undeclaredPort)',
    message: 'name at least one detector, such as crashLoop: {}',
    check: (self) => Object.keys(self).some((k) => (DETECTORS as readonly string[]).includes(k)),
  },
  {
    rule: "!has(self.anomaly) || !has(self.anomaly.signal) || self.anomaly.signal != 'errorLogs' || has(self.errorLogs)",
    message: 'anomaly.signal errorLogs needs the errorLogs detector (its pattern says what an error line is)',
    fieldPath: '.anomaly.signal',
    check: (self) => self.anomaly?.signal !== 'errorLogs' || self.errorLogs !== undefined,
  },
  {
    rule: "!has(self.anomaly) || !has(self.anomaly.signal) || self.anomaly.signal != 'healthFailures' || has(self.health)",
    message: 'anomaly.signal healthFailures needs the health detector (its sidecar reports the failures)',
    fieldPath: '.anomaly.signal',
    check: (self) => self.anomaly?.signal !== 'healthFailures' || self.health !== undefined,
  },
]);

const preventive = Type.Object({
  restartSimilar: Type.Optional(Type.Boolean({
    description: 'Restart one other pod of the incident\'s group per incident (the one with the most restarts, through the Eviction API so its PDB holds and its owner recreates it), only while every other pod of the group is ready and no rollout is restarting the group already. Held back, it is tried again with backoff while the incident is open.',
    default: true,
  })),
  taintNode: Type.Optional(Type.Object({
    incidents: count('Incidents of one group within the window, on one node and more than half of the group\'s incidents there, that make the node tainted.', 2, 1000),
    window: window('How far back the group\'s incidents are counted.', '10m'),
    ttl: Type.Optional(duration({ description: 'How long the taint stays after its timeAdded (guard sets it when adding the taint; every replica reads the end from it); it is removed then, and when the policy is deleted.', min: '1m', max: '24h', default: '30m' })),
  }, {
    description: 'Taint a node NoSchedule (guard.crowsnest.dev/failing=<namespace>.<policy>) when the group\'s failures concentrate there, so replacements land elsewhere: at most one node per policy at a time, and never a node the group\'s pods need (each of their placements, by nodeSelector, required node affinity and tolerations, must keep another Ready node that admits it). Present: on ({} takes the defaults). No cooldown: a taint evicts nothing.',
  })),
}, { description: 'What the Preventive step does on pods similar to the incident\'s.' });

const MAX_QUARANTINED_PERCENT = '^(100|[1-9]?[0-9])%$';

const quarantine = Type.Object({
  ttl: Type.Optional(duration({ description: 'How long a pod stays quarantined before onExpiry applies.', min: '10s', max: '720h', default: '24h' })),
  onExpiry: Type.Optional(Type.Enum(['Release', 'Delete'], {
    description: 'What happens when the ttl ends: Release gives the pod back its labels (its owner adopts it again and scales one pod away if it has too many); Delete deletes it.',
    default: 'Delete',
  })),
  maxQuarantined: Type.Optional(withRules(intOrString({
    description: 'At most this many pods of a group are quarantined at once: a count (1) or a percentage of the group\'s pods ("34%", rounded down). 0 disables quarantine.',
    default: 1,
  }), [{
    rule: `type(self) == int ? self >= 0 : self.matches('${MAX_QUARANTINED_PERCENT}')`,
    message: 'must be a count such as 1, or a percentage from 0% to 100% such as "34%"',
    check: (self) => (typeof self === 'number' ? Number.isInteger(self) && self >= 0 : new RegExp(MAX_QUARANTINED_PERCENT).test(self)),
  }])),
}, { description: 'How quarantine is bounded.' });

const has = (actions: readonly string[] | undefined, action: GuardAction) => (actions ?? []).includes(action);

const spec = withRules(Type.Object({
  targets,
  detectors,
  actions: Type.Optional(withRules(Type.Array(Type.Enum([...GUARD_ACTIONS]), {
    description: 'The steps an incident takes, always in this order whatever order they are listed in: Event (an Event on the pod and the policy), Quarantine (out of its owner, kept for forensics), Isolate (a NetworkPolicy denying all its traffic), Preventive (see preventive), Evict (Eviction API; for policies without Quarantine).',
    maxItems: 5,
    default: ['Event'],
  }), [unique<string>('action')])),
  preventive: Type.Optional(preventive),
  quarantine: Type.Optional(quarantine),
  cooldown: Type.Optional(duration({ description: 'After an incident on a group, no other action on that group until this much time has passed.', min: '0s', max: '24h', default: '5m' })),
  dryRun: Type.Optional(Type.Boolean({ description: 'Record in status and Events what would be done, and change nothing.', default: false })),
}, { description: 'Which pods to guard, what counts as an incident, and what to do about it.' }), [
  {
    rule: "!has(self.actions) || !('Quarantine' in self.actions && 'Evict' in self.actions)",
    message: 'Quarantine and Evict exclude each other: quarantine keeps the pod for forensics, evict removes it; list one',
    fieldPath: '.actions',
    check: (self) => !(has(self.actions, 'Quarantine') && has(self.actions, 'Evict')),
  },
  {
    rule: "!has(self.actions) || !('Isolate' in self.actions) || 'Quarantine' in self.actions",
    message: 'Isolate needs Quarantine in actions: only a quarantined pod is isolated',
    fieldPath: '.actions',
    check: (self) => !has(self.actions, 'Isolate') || has(self.actions, 'Quarantine'),
  },
]);

/** The condition types of a GuardPolicy's status. */
export const GuardPolicyConditions = {
  /** True while the policy is understood and its pods are watched. */
  ready: 'Ready',
  /** True while the policy has open incidents. */
  degraded: 'Degraded',
} as const;

/** How an action went: taken, taken in dry run only, skipped by a rail, or failed. */
export const ACTION_OUTCOMES = ['Taken', 'DryRun', 'Skipped', 'Failed'] as const;
export type ActionOutcome = (typeof ACTION_OUTCOMES)[number];

/** Incidents kept in status (open first, then the newest closed ones). */
export const MAX_STATUS_INCIDENTS = 50;

const text = (description: string, maxLength = 1024) => Type.String({ description, maxLength });
const time = (description: string) => Type.String({ description, format: 'date-time' });

const actionRecord = Type.Object({
  action: Type.Enum([...GUARD_ACTIONS], { description: 'The ladder step.' }),
  at: time('When it was decided.'),
  outcome: Type.Enum([...ACTION_OUTCOMES], { description: 'Taken, DryRun (would have been taken), Skipped (a rail or a missing step held it back) or Failed.' }),
  message: text('What was done or why not.'),
});

const incident = Type.Object({
  id: Type.String({ description: 'Unique id of the incident (the pod\'s quarantine label carries it).', maxLength: 63 }),
  pod: Type.String({ description: 'The pod the incident is about.', maxLength: 253 }),
  podUid: Type.Optional(Type.String({ description: 'Its UID.', maxLength: 64 })),
  node: Type.Optional(Type.String({ description: 'The node it ran on.', maxLength: 253 })),
  group: text('The group of similar pods it belongs to.', 512),
  detector: Type.Enum([...DETECTORS], { description: 'The detector that opened it.' }),
  reason: Type.String({ description: 'Why, in CamelCase (CrashLoop, OOMKilled, ...).', maxLength: 128 }),
  evidence: Type.Array(text('One piece of evidence.'), { description: 'What the detector saw.', maxItems: 10 }),
  openedAt: time('When it opened.'),
  closedAt: Type.Optional(time('When it closed (the pod was released, deleted or is gone).')),
  actions: Type.Array(actionRecord, { description: 'The ladder steps, in order.', maxItems: 10 }),
});

const status = Type.Object({
  observedGeneration: Type.Optional(Type.Integer({ description: 'The .metadata.generation this status was computed from.', minimum: 0, format: 'int64' })),
  conditions: Type.Optional(conditions({ description: 'Ready: the policy is understood and its pods watched. Degraded: incidents are open.' })),
  watchedPods: Type.Optional(Type.Integer({ description: 'Pods the policy selects now (quarantined ones excluded).', minimum: 0 })),
  quarantinedPods: Type.Optional(Type.Integer({ description: 'Pods quarantined by this policy now.', minimum: 0 })),
  openIncidents: Type.Optional(Type.Integer({ description: 'Incidents not closed.', minimum: 0 })),
  incidents: Type.Optional(Type.Array(incident, { description: 'Open incidents, then the latest closed ones.', maxItems: MAX_STATUS_INCIDENTS })),
}, { description: 'What guard observed and did.' });

export const GuardPolicyApi = defineApi({
  version: 'v1alpha1',
  kind: 'GuardPolicy',
  plural: 'guardpolicies',
  shortNames: ['gp'],
  scope: 'Namespaced',
  description: 'Watches a group of pods of its namespace for failures (crash loops, OOM kills, failing health probes, error logs, anomalies) and threats (undeclared listening ports), and answers each incident with a graduated ladder of actions (Event, Quarantine, Isolate, Preventive, Evict) bounded by guard rails.',
  spec,
  status,
  printerColumns: [
    { name: 'Ready', type: 'string', jsonPath: '.status.conditions[?(@.type=="Ready")].status' },
    { name: 'Watched', type: 'integer', jsonPath: '.status.watchedPods', description: 'Pods the policy selects.' },
    { name: 'Incidents', type: 'integer', jsonPath: '.status.openIncidents', description: 'Open incidents.' },
    { name: 'Quarantined', type: 'integer', jsonPath: '.status.quarantinedPods', description: 'Pods quarantined now.' },
    { name: 'DryRun', type: 'boolean', jsonPath: '.spec.dryRun', priority: 1 },
    { name: 'Age', type: 'date', jsonPath: '.metadata.creationTimestamp' },
  ],
});

export type GuardPolicy = ApiObject<typeof GuardPolicyApi>;
export type GuardPolicySpec = ApiSpec<typeof GuardPolicyApi>;
export type GuardPolicyStatus = ApiStatus<typeof GuardPolicyApi>;
export type Incident = NonNullable<GuardPolicyStatus['incidents']>[number];
export type ActionRecord = Incident['actions'][number];

/** The error-log pattern of a policy as one JavaScript/RE2 source (`(?i:...)` when case-insensitive). */
export function errorLogPattern(spec: GuardPolicySpec): string | undefined {
  const logs = spec.detectors.errorLogs;
  if (!logs) return undefined;
  const pattern = logs.pattern ?? 'error|panic|fatal';
  return (logs.ignoreCase ?? true) ? `(?i:${pattern})` : pattern;
}
