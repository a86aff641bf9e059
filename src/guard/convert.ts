/**
 * `crowsnest guard convert`: the policy framework's objects (rohitrajhans/kubernetes-cluster-monitor)
 * turned into GuardPolicies. Pure: YAML text in, policies and notes out.
 *
 * Two generations of the tool's API are read: `Receiver` (sampleproject.io/v1alpha1, spec
 * `logFrequency`, `destination`) and `PolicyDefinition` (k8s.crd.io/v1alpha1, the same under
 * `logSpec`). What the tool did with each field decides what it becomes:
 * - `Namespace` (a list; none meant `default`): a GuardPolicy is namespaced, so one per namespace.
 * - `labelSelector` with the tool's spelling `matchExpression` and its lower-case operators
 *   (`in`, `notin`, joined into a selector string): a LabelSelector. The tool decoded with Go's
 *   encoding/json, which matches keys case-insensitively; so does this converter.
 * - `groupLabel`: `targets.groupBy`.
 * - `action: quarantine` (the tool scaled the matching Deployments to zero): the ladder's Event
 *   and Quarantine, which take the failing pod out of its owner and never scale anything.
 * - `logFrequency` (seconds between the sidecar's HTTP checks, 10 by default): the health
 *   detector's window, three such intervals (an incident after three failed checks in it).
 * - `destination` (an external server the tool sent all logs to, unauthenticated): not converted;
 *   logs stay on the nodes and are served to callers allowed `get pods/log`.
 *
 * Converted policies are dry runs unless asked otherwise: they record what they would do, so the
 * switch can be watched before guard acts.
 */
import { loadAll } from 'js-yaml';
import { formatErrors } from '../kube/api/validate.ts';
import { type GuardPolicySpec, GuardPolicyApi } from './api.ts';

/** The tool's health checks ran every 10 s when `logFrequency` was not set. */
const TOOL_DEFAULT_LOG_FREQUENCY_S = 10;
/** Failed checks within three of the tool's intervals that open a health incident. */
const HEALTH_FAILURES = 3;
/** The shortest window the API takes. */
const MIN_WINDOW_S = 10;

export interface ConvertOptions {
  /** Emit policies that act (`dryRun: false`). Default false: converted policies are dry runs. */
  readonly enforce?: boolean;
  /** Where the input came from, for messages (a file name, or `stdin`). */
  readonly source?: string;
}

type LabelSelectorRequirement = NonNullable<GuardPolicySpec['targets']['podSelector']['matchExpressions']>[number];

/** A GuardPolicy as a conversion writes it: no status, only the metadata it sets. */
export interface ConvertedPolicy {
  apiVersion: string;
  kind: 'GuardPolicy';
  metadata: { name: string; namespace: string; labels?: Record<string, string>; annotations: Record<string, string> };
  spec: GuardPolicySpec;
}

export interface Conversion {
  readonly policies: readonly ConvertedPolicy[];
  /** What the user should know: fields dropped or changed in meaning, namespaces to label. One line each. */
  readonly notes: readonly string[];
}

/** Input that cannot be converted; the message names the document and the field. */
export class ConvertError extends Error {
  override name = 'ConvertError';
}

/** Annotation on a converted policy naming what it came from (`Receiver/myreceiver1`). */
export const CONVERTED_FROM_ANNOTATION = 'guard.crowsnest.dev/converted-from';

const TOOL_KINDS = new Set(['Receiver', 'PolicyDefinition']);
const OPERATORS: Readonly<Record<string, LabelSelectorRequirement['operator']>> = {
  in: 'In', notin: 'NotIn', exists: 'Exists', doesnotexist: 'DoesNotExist',
};
/** A label key: an optional DNS-subdomain prefix and a name of at most 63 characters. */
const LABEL_KEY = /^(?:[a-z0-9](?:[-a-z0-9.]{0,251}[a-z0-9])?\/)?[A-Za-z0-9](?:[-A-Za-z0-9_.]{0,61}[A-Za-z0-9])?$/;
const LABEL_VALUE = /^(?:[A-Za-z0-9](?:[-A-Za-z0-9_.]{0,61}[A-Za-z0-9])?)?$/;
const DNS_LABEL = /^[a-z0-9](?:[-a-z0-9]{0,61}[a-z0-9])?$/;
const DNS_SUBDOMAIN = /^[a-z0-9](?:[-a-z0-9.]{0,251}[a-z0-9])?$/;

type Json = Record<string, unknown>;

const isObject = (value: unknown): value is Json => typeof value === 'object' && value !== null && !Array.isArray(value);

/** The value of `key` in `object`, matched the way Go's encoding/json matches: exact first, then case-insensitively. */
function field(object: Json, key: string): unknown {
  if (key in object) return object[key];
  const lower = key.toLowerCase();
  for (const [name, value] of Object.entries(object)) if (name.toLowerCase() === lower) return value;
  return undefined;
}

/** Converts every Receiver and PolicyDefinition in `text` (one or more YAML documents, or a List). */
export function convertPolicies(text: string, options: ConvertOptions = {}): Conversion {
  const source = options.source ?? 'input';
  let documents: unknown[];
  try {
    documents = loadAll(text);
  } catch (err) {
    throw new ConvertError(`${source}: not YAML: ${(err as Error).message.split('\n')[0]}`);
  }
  const objects: { readonly object: Json; readonly where: string }[] = [];
  documents.forEach((document, index) => {
    const where = `${source}, document ${index + 1}`;
    if (document === null || document === undefined) return;
    if (!isObject(document)) throw new ConvertError(`${where}: expected an object with apiVersion, kind, metadata and spec`);
    if (document.kind === 'List' || (typeof document.kind === 'string' && document.kind.endsWith('List') && Array.isArray(document.items))) {
      const items = Array.isArray(document.items) ? document.items : [];
      items.forEach((item, itemIndex) => {
        if (!isObject(item)) throw new ConvertError(`${where}, item ${itemIndex + 1}: expected an object`);
        objects.push({ object: item, where: `${where}, item ${itemIndex + 1}` });
      });
      return;
    }
    objects.push({ object: document, where });
  });
  if (objects.length === 0) throw new ConvertError(`${source}: no Receiver or PolicyDefinition found`);

  const policies: ConvertedPolicy[] = [];
  const notes: string[] = [];
  const names = new Set<string>();
  for (const { object, where } of objects) {
    const converted = convertOne(object, where, options.enforce === true);
    for (const policy of converted.policies) {
      const key = `${policy.metadata.namespace}/${policy.metadata.name}`;
      if (names.has(key)) throw new ConvertError(`${where}: a second policy named ${key} (names must be unique per namespace)`);
      names.add(key);
      policies.push(policy);
    }
    notes.push(...converted.notes);
  }
  const namespaces = [...new Set(policies.map((policy) => policy.metadata.namespace))].sort();
  notes.push(
    `the health sidecar is injected in namespaces labelled sidecar-injection=enabled (as the tool required): kubectl label namespace ${namespaces.join(' ')} sidecar-injection=enabled --overwrite`,
  );
  if (!options.enforce) notes.push('the policies are dry runs (spec.dryRun: true): they record what they would do; set dryRun: false, or convert with --enforce, once their status looks right');
  return { policies, notes };
}

function convertOne(object: Json, where: string, enforce: boolean): { policies: ConvertedPolicy[]; notes: string[] } {
  const { policies, notes } = draftPolicies(object, where, enforce);
  for (const policy of policies) {
    // Whatever passes the checks above makes a valid policy; were it not so, that is our bug, not the user's input.
    const result = GuardPolicyApi.validate(policy);
    if (!result.valid) throw new Error(`converted ${policy.metadata.namespace}/${policy.metadata.name} is not a valid GuardPolicy: ${formatErrors(result.errors)}`);
  }
  return { policies, notes };
}

function draftPolicies(object: Json, where: string, enforce: boolean): { policies: ConvertedPolicy[]; notes: string[] } {
  const kind = object.kind;
  if (typeof kind !== 'string' || !TOOL_KINDS.has(kind)) {
    throw new ConvertError(`${where}: kind ${JSON.stringify(kind ?? null)} is not one of the tool's (Receiver, PolicyDefinition)`);
  }
  const metadata = isObject(object.metadata) ? object.metadata : {};
  const name = metadata.name;
  if (typeof name !== 'string' || !DNS_SUBDOMAIN.test(name)) throw new ConvertError(`${where}: metadata.name ${JSON.stringify(name ?? null)} is not a valid object name`);
  const label = `${kind}/${name}`;
  const at = `${where} (${label})`;
  const spec = object.spec;
  if (!isObject(spec)) throw new ConvertError(`${at}: no spec`);
  const notes: string[] = [];

  const namespaces = namespacesOf(spec, at);
  if (namespaces.defaulted) notes.push(`${label}: no Namespace, so the policy goes to "default", where the tool looked`);
  const podSelector = selectorOf(field(spec, 'labelSelector'), at, label, notes);
  const groupBy = groupByOf(field(spec, 'groupLabel'), at);
  const actions = actionsOf(field(spec, 'action'), at, label, notes);

  const logSpec = field(spec, 'logSpec');
  const logFields: Json = isObject(logSpec) ? logSpec : spec;
  const interval = intervalOf(field(logFields, 'logFrequency'), at);
  const destination = field(logFields, 'destination');
  if (Array.isArray(destination) && destination.length > 0) {
    notes.push(`${label}: destination is not converted: guard keeps logs on the nodes and serves them only to callers allowed get pods/log (the tool sent every log line, unauthenticated, to an outside server)`);
  }

  const labels = isObject(metadata.labels) ? stringRecord(metadata.labels) : undefined;
  const policies = namespaces.names.map((namespace): ConvertedPolicy => ({
    apiVersion: GuardPolicyApi.apiVersion,
    kind: 'GuardPolicy',
    metadata: {
      name,
      namespace,
      ...(labels && Object.keys(labels).length > 0 ? { labels } : {}),
      annotations: { [CONVERTED_FROM_ANNOTATION]: label },
    },
    spec: {
      targets: { podSelector, ...(groupBy.length > 0 ? { groupBy } : {}) },
      detectors: { health: { failures: HEALTH_FAILURES, window: `${Math.max(MIN_WINDOW_S, HEALTH_FAILURES * interval)}s` } },
      actions,
      dryRun: !enforce,
    },
  }));
  return { policies, notes };
}

function namespacesOf(spec: Json, at: string): { names: string[]; defaulted: boolean } {
  const value = field(spec, 'Namespace');
  if (value === undefined || value === null || (Array.isArray(value) && value.length === 0)) return { names: ['default'], defaulted: true };
  const list = typeof value === 'string' ? [value] : value;
  if (!Array.isArray(list)) throw new ConvertError(`${at}: Namespace must be a list of namespace names`);
  const names: string[] = [];
  for (const entry of list) {
    // The tool stopped at the first empty entry; an empty entry here is a mistake worth naming.
    if (typeof entry !== 'string' || !DNS_LABEL.test(entry)) throw new ConvertError(`${at}: Namespace entry ${JSON.stringify(entry)} is not a namespace name`);
    if (!names.includes(entry)) names.push(entry);
  }
  return { names, defaulted: false };
}

type PodSelector = GuardPolicySpec['targets']['podSelector'];

function selectorOf(value: unknown, at: string, label: string, notes: string[]): PodSelector {
  if (value === undefined || value === null) {
    notes.push(`${label}: no labelSelector: the policy selects every pod of its namespace, as the tool selected every Deployment`);
    return {};
  }
  if (!isObject(value)) throw new ConvertError(`${at}: labelSelector must be an object with matchLabels and/or matchExpression`);
  const selector: { matchLabels?: Record<string, string>; matchExpressions?: LabelSelectorRequirement[] } = {};
  const matchLabels = field(value, 'matchLabels');
  if (matchLabels !== undefined && matchLabels !== null) {
    if (!isObject(matchLabels)) throw new ConvertError(`${at}: labelSelector.matchLabels must be a map of label keys to values`);
    const labels: Record<string, string> = {};
    for (const [key, raw] of Object.entries(matchLabels)) {
      const text = typeof raw === 'string' ? raw : typeof raw === 'number' || typeof raw === 'boolean' ? String(raw) : undefined;
      if (!LABEL_KEY.test(key)) throw new ConvertError(`${at}: labelSelector.matchLabels key ${JSON.stringify(key)} is not a label key`);
      if (text === undefined || !LABEL_VALUE.test(text)) throw new ConvertError(`${at}: labelSelector.matchLabels.${key} ${JSON.stringify(raw)} is not a label value`);
      labels[key] = text;
    }
    if (Object.keys(labels).length > 0) selector.matchLabels = labels;
  }
  // The tool's own spelling; the Kubernetes spelling the tool ignored is taken too, with a note.
  const toolExpressions = field(value, 'matchExpression');
  const kubeExpressions = 'matchExpressions' in value ? value.matchExpressions : undefined;
  if (kubeExpressions !== undefined && kubeExpressions !== null) {
    notes.push(`${label}: labelSelector.matchExpressions was ignored by the tool (it read matchExpression); the policy applies it`);
  }
  const expressions = [...listOf(toolExpressions, at, 'matchExpression'), ...listOf(kubeExpressions, at, 'matchExpressions')];
  if (expressions.length > 0) selector.matchExpressions = expressions.map((expression, index) => requirementOf(expression, `${at}: labelSelector expression ${index + 1}`));
  if (!selector.matchLabels && !selector.matchExpressions) {
    notes.push(`${label}: an empty labelSelector: the policy selects every pod of its namespace, as the tool selected every Deployment`);
  }
  return selector;
}

function listOf(value: unknown, at: string, name: string): unknown[] {
  if (value === undefined || value === null) return [];
  if (!Array.isArray(value)) throw new ConvertError(`${at}: labelSelector.${name} must be a list`);
  return value;
}

function requirementOf(value: unknown, at: string): LabelSelectorRequirement {
  if (!isObject(value)) throw new ConvertError(`${at}: expected {key, operator, values}`);
  const key = field(value, 'key');
  const operatorText = field(value, 'operator');
  if (typeof key !== 'string' || !LABEL_KEY.test(key)) throw new ConvertError(`${at}: key ${JSON.stringify(key ?? null)} is not a label key`);
  const operator = typeof operatorText === 'string' ? OPERATORS[operatorText.toLowerCase()] : undefined;
  if (!operator) throw new ConvertError(`${at}: operator ${JSON.stringify(operatorText ?? null)} is not one of in, notin, exists, doesnotexist`);
  const rawValues = field(value, 'values');
  const values = rawValues === undefined || rawValues === null ? [] : rawValues;
  if (!Array.isArray(values)) throw new ConvertError(`${at}: values must be a list`);
  const texts = values.map((entry) => (typeof entry === 'string' ? entry : typeof entry === 'number' || typeof entry === 'boolean' ? String(entry) : undefined));
  texts.forEach((text, index) => {
    if (text === undefined || !LABEL_VALUE.test(text)) throw new ConvertError(`${at}: value ${JSON.stringify(values[index])} is not a label value`);
  });
  const needsValues = operator === 'In' || operator === 'NotIn';
  if (needsValues && texts.length === 0) throw new ConvertError(`${at}: operator ${operatorText} needs at least one value`);
  if (!needsValues && texts.length > 0) throw new ConvertError(`${at}: operator ${operatorText} takes no values`);
  return needsValues ? { key, operator, values: texts as string[] } : { key, operator };
}

function groupByOf(value: unknown, at: string): string[] {
  if (value === undefined || value === null) return [];
  const list = typeof value === 'string' ? [value] : value;
  if (!Array.isArray(list)) throw new ConvertError(`${at}: groupLabel must be a list of label keys`);
  const keys: string[] = [];
  for (const entry of list) {
    if (typeof entry !== 'string' || !LABEL_KEY.test(entry)) throw new ConvertError(`${at}: groupLabel entry ${JSON.stringify(entry)} is not a label key`);
    if (!keys.includes(entry)) keys.push(entry);
  }
  return keys;
}

function actionsOf(value: unknown, at: string, label: string, notes: string[]): NonNullable<GuardPolicySpec['actions']> {
  if (value === undefined || value === null || value === '') {
    notes.push(`${label}: no action: the policy only records Events`);
    return ['Event'];
  }
  if (typeof value !== 'string' || value.toLowerCase() !== 'quarantine') {
    throw new ConvertError(`${at}: action ${JSON.stringify(value)} is not the tool's only action, quarantine`);
  }
  notes.push(`${label}: action quarantine becomes Event + Quarantine: the failing pod leaves its owner (which replaces it) and stays for inspection; nothing is scaled to zero (the tool scaled the whole Deployment to zero)`);
  return ['Event', 'Quarantine'];
}

function intervalOf(value: unknown, at: string): number {
  if (value === undefined || value === null || value === 0) return TOOL_DEFAULT_LOG_FREQUENCY_S;
  const seconds = typeof value === 'string' && /^\d+$/.test(value) ? Number(value) : value;
  if (typeof seconds !== 'number' || !Number.isInteger(seconds) || seconds < 1 || seconds > 3600) {
    throw new ConvertError(`${at}: logFrequency ${JSON.stringify(value)} must be a whole number of seconds between 1 and 3600`);
  }
  return seconds;
}

function stringRecord(object: Json): Record<string, string> {
  const record: Record<string, string> = {};
  for (const [key, value] of Object.entries(object)) if (typeof value === 'string') record[key] = value;
  return record;
}
