/**
 * Redaction of inventory objects before they leave the process: what a snapshot may contain.
 *
 * An inventory report is meant to be shipped off-cluster, so by default it must carry no secret
 * material. Three things in a cluster dump routinely do:
 *
 * - Secret values (`data`, `stringData`). Keys are kept because "which keys does this Secret
 *   have" is inventory; values are replaced by {@link REDACTED} or, on request, by a digest.
 * - `kubectl.kubernetes.io/last-applied-configuration`, which holds the whole object as last
 *   applied — for a Secret applied with kubectl that is every value in plain text. Dropped on
 *   every object, together with `metadata.managedFields` (bulky, and says nothing about the
 *   cluster's contents).
 * - Helm release records. Helm 3 keeps each release revision in a Secret of type
 *   `helm.sh/release.v1` (or, with `HELM_DRIVER=configmap`, a ConfigMap labelled `owner=helm`)
 *   whose `release` value is the gzipped release JSON — including the user-supplied values
 *   (`config`), the rendered `manifest` (Secrets included) and the chart's defaults. The record is
 *   decoded and only release metadata is kept, as a synthetic top-level field (see
 *   {@link HelmReleaseSummary}); the data itself is redacted like any Secret value.
 *
 * Failure never leaks: when a Helm record cannot be decoded, its data is redacted all the same
 * and a note says why, so the caller can report it. Notes never quote the data.
 *
 * Not redacted, on purpose: ordinary ConfigMaps (non-secret by contract, and the main reason to
 * take an inventory at all), and values inlined elsewhere (a Pod's literal `env` values, CRDs of
 * secret managers). Those are the cluster owner's choice to put there.
 */
import { hash } from 'node:crypto';
import { gunzipSync } from 'node:zlib';
import type { KubeObject, ObjectMeta } from '../kube/objects/resources.ts';

/** How redaction behaves for one run. */
export interface RedactionOptions {
  /** When false, objects pass through untouched (`--no-redact`; the caller warns). */
  readonly enabled: boolean;
  /**
   * Replace each Secret value with `sha256:<hex>` of its decoded bytes instead of
   * {@link REDACTED}, so two snapshots show *that* a value changed, and an operator can check a
   * known value with `printf %s "$value" | sha256sum`. Off by default: a bare hash of a
   * low-entropy value (`true`, `admin`, a short PIN) can be reversed by guessing.
   */
  readonly secretValueDigest: boolean;
}

/** Redaction on, values replaced by a constant marker. */
export const DEFAULT_REDACTION_OPTIONS: RedactionOptions = { enabled: true, secretValueDigest: false };

/** What one object became. */
export interface RedactionResult {
  /** The object to emit. Never the input when anything was removed; see {@link redactObject}. */
  readonly object: KubeObject;
  /**
   * Why redaction was less precise than intended, one sentence each (e.g. `helm release could
   * not be decoded: not gzip or JSON`). The object is still safe to emit; these belong in the run
   * summary. Empty in the common case. Never contains secret material.
   */
  readonly notes: readonly string[];
}

/** The value that replaces each Secret value when no digest is wanted. */
export const REDACTED = '<redacted>';

/** Annotation holding the whole object as last applied by `kubectl apply` — Secret values included. */
export const LAST_APPLIED_ANNOTATION = 'kubectl.kubernetes.io/last-applied-configuration';

/** Secret `type` of Helm 3 release records. */
export const HELM_RELEASE_SECRET_TYPE = 'helm.sh/release.v1';

/**
 * Name of the synthetic top-level field a decoded Helm release record gets. Top level, not under
 * `metadata` or `data`, so it cannot be mistaken for something the API server returned, and
 * consumers find it without knowing the storage driver.
 */
export const HELM_RELEASE_FIELD = 'helmRelease';

/**
 * The part of a Helm release that is inventory: identity, chart and state. Fields the record does
 * not have (or has with an unexpected type) are absent. Only scalars are ever copied out of the
 * record, so nothing of `config`, `manifest`, `chart.values` or `chart.templates` can reach it.
 */
export interface HelmReleaseSummary {
  readonly name?: string;
  readonly namespace?: string;
  /** Chart name (`chart.metadata.name`). */
  readonly chart?: string;
  readonly chartVersion?: string;
  readonly appVersion?: string;
  /** `deployed`, `superseded`, `failed`, `pending-upgrade`, … */
  readonly status?: string;
  /** Release revision (Helm's `version`), 1 for the first install. */
  readonly revision?: number;
  /** RFC 3339 timestamps as Helm wrote them. */
  readonly firstDeployed?: string;
  readonly lastDeployed?: string;
}

/**
 * Upper bound for a decompressed Helm release record. Helm itself caps a record at the 1 MiB
 * object size limit compressed; 64 MiB leaves room for any real record while refusing a gzip bomb.
 */
const MAX_RELEASE_BYTES = 64 * 1024 * 1024;

/**
 * Redacts one object as described in the module comment. With `options.enabled` false the input
 * comes back as is.
 *
 * The input is never mutated: only the parts that change are copied (top level, `metadata`,
 * `annotations`, `data`), everything else is shared with the input. That keeps the cost of a
 * 50,000-object run to a few shallow copies per object, and lets callers keep using the input
 * (e.g. to log it in debug mode) without surprises. Callers must not mutate the result either.
 *
 * Other rules:
 * - `metadata.annotations` is removed when dropping the last-applied annotation leaves it empty,
 *   so a redacted object looks like one that was never `kubectl apply`'d.
 * - Any kind named `Secret` is treated as a Secret whatever its API group: failing closed on a
 *   look-alike custom resource costs a field, failing open leaks.
 * - A `data`/`stringData` that is not a JSON object cannot be redacted key by key and is
 *   replaced by an empty object, with a note.
 */
export function redactObject(obj: KubeObject, options: RedactionOptions): RedactionResult {
  if (!options.enabled) return { object: obj, notes: [] };
  const notes: string[] = [];
  let out = obj as KubeObject & Record<string, unknown>;
  const meta = withoutServerBookkeeping(obj.metadata);
  if (meta !== obj.metadata) out = { ...out, metadata: meta };

  if (obj.kind === 'Secret') {
    const secret = out;
    out = { ...secret };
    for (const field of ['data', 'stringData'] as const) {
      if (secret[field] === undefined) continue;
      out[field] = redactValues(secret[field], field === 'data' ? 'base64' : 'utf8', options, field, notes);
    }
    if (secret['type'] === HELM_RELEASE_SECRET_TYPE) {
      const release = summarizeRelease(releaseField(secret['data']), 2, notes);
      if (release) out[HELM_RELEASE_FIELD] = release;
    }
  } else if (obj.kind === 'ConfigMap' && isHelmConfigMap(meta)) {
    const configMap = out;
    out = { ...configMap };
    for (const field of ['data', 'binaryData'] as const) {
      if (configMap[field] === undefined) continue;
      out[field] = redactValues(configMap[field], field === 'data' ? 'utf8' : 'base64', options, field, notes);
    }
    if (isHelm3Owner(meta)) {
      const release = summarizeRelease(releaseField(configMap['data']), 1, notes);
      if (release) out[HELM_RELEASE_FIELD] = release;
    } else {
      // Helm 2 (Tiller) stored protobuf, which we do not decode; the data is redacted regardless.
      notes.push('helm v2 (Tiller) release not decoded; data redacted');
    }
  }
  return { object: out, notes };
}

/** `meta` without managedFields and the last-applied annotation; `meta` itself when it has neither. */
function withoutServerBookkeeping(meta: ObjectMeta | undefined): ObjectMeta | undefined {
  if (!meta) return meta;
  const hasLastApplied = meta.annotations !== undefined && Object.hasOwn(meta.annotations, LAST_APPLIED_ANNOTATION);
  if (!hasLastApplied && !Object.hasOwn(meta, 'managedFields')) return meta;
  const { managedFields: _managedFields, ...rest } = meta;
  if (hasLastApplied) {
    const { [LAST_APPLIED_ANNOTATION]: _lastApplied, ...annotations } = meta.annotations!;
    if (Object.keys(annotations).length > 0) rest.annotations = annotations;
    else delete rest.annotations;
  }
  return rest;
}

/**
 * A copy of a string map with every value replaced. `encoding` says how to get at the bytes a
 * digest covers: `data`/`binaryData` values are base64 of the bytes, `stringData`/ConfigMap `data`
 * values are the text itself.
 */
function redactValues(values: unknown, encoding: 'base64' | 'utf8', options: RedactionOptions, field: string, notes: string[]): Record<string, string> {
  if (values === null || typeof values !== 'object' || Array.isArray(values)) {
    notes.push(`${field} is not a key/value map; replaced by an empty map`);
    return {};
  }
  const out: Record<string, string> = {};
  for (const [key, value] of Object.entries(values)) {
    if (typeof value !== 'string') {
      out[key] = REDACTED;
      notes.push(`${field}.${key} is not a string; redacted without digest`);
    } else {
      out[key] = options.secretValueDigest ? `sha256:${hash('sha256', Buffer.from(value, encoding), 'hex')}` : REDACTED;
    }
  }
  return out;
}

/** Helm 3's ConfigMap driver labels records `owner=helm`, Helm 2's `OWNER=TILLER`. */
function isHelmConfigMap(meta: ObjectMeta | undefined): boolean {
  return isHelm3Owner(meta) || meta?.labels?.['OWNER'] === 'TILLER';
}

function isHelm3Owner(meta: ObjectMeta | undefined): boolean {
  return meta?.labels?.['owner'] === 'helm';
}

function releaseField(data: unknown): unknown {
  return data !== null && typeof data === 'object' && !Array.isArray(data) ? (data as Record<string, unknown>)['release'] : undefined;
}

/**
 * Decodes a Helm 3 release record and keeps its metadata. `base64Layers` is 2 for Secrets (the
 * API's base64 around Helm's own) and 1 for ConfigMaps. Helm gzips records (magic `1f 8b`); very
 * old ones are plain JSON, so both are accepted, as Helm's own `decodeRelease` does.
 *
 * Returns undefined, with a note, when the record cannot be decoded. The note names the failing
 * step only: the parser's own messages quote the input, which here is secret.
 */
function summarizeRelease(encoded: unknown, base64Layers: 1 | 2, notes: string[]): HelmReleaseSummary | undefined {
  const fail = (why: string): undefined => {
    notes.push(`helm release could not be decoded: ${why}; data redacted`);
    return undefined;
  };
  if (typeof encoded !== 'string') return fail('no "release" value');
  let bytes = Buffer.from(encoded, 'base64');
  if (base64Layers === 2) bytes = Buffer.from(bytes.toString('latin1'), 'base64');
  if (bytes[0] === 0x1f && bytes[1] === 0x8b) {
    try {
      bytes = gunzipSync(bytes, { maxOutputLength: MAX_RELEASE_BYTES });
    } catch {
      return fail('corrupt or oversized gzip data');
    }
  }
  let release: unknown;
  try {
    release = JSON.parse(bytes.toString('utf8'));
  } catch {
    return fail('not gzip or JSON');
  }
  if (release === null || typeof release !== 'object' || Array.isArray(release)) return fail('not a JSON object');
  const r = release as Record<string, unknown>;
  const info = asRecord(r['info']);
  const chartMeta = asRecord(asRecord(r['chart'])['metadata']);
  const summary: Record<string, string | number> = {};
  const put = (key: keyof HelmReleaseSummary, value: unknown, type: 'string' | 'number'): void => {
    if (typeof value === type) summary[key] = value as string | number;
  };
  put('name', r['name'], 'string');
  put('namespace', r['namespace'], 'string');
  put('chart', chartMeta['name'], 'string');
  put('chartVersion', chartMeta['version'], 'string');
  put('appVersion', chartMeta['appVersion'], 'string');
  put('status', info['status'], 'string');
  put('revision', r['version'], 'number');
  put('firstDeployed', info['first_deployed'], 'string');
  put('lastDeployed', info['last_deployed'], 'string');
  return summary as HelmReleaseSummary;
}

function asRecord(value: unknown): Record<string, unknown> {
  return value !== null && typeof value === 'object' && !Array.isArray(value) ? (value as Record<string, unknown>) : {};
}
