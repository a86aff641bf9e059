/**
 * From an API definition to its CustomResourceDefinition: the JSON Schema TypeBox builds becomes a
 * structural OpenAPI v3 schema, the only kind `apiextensions.k8s.io/v1` accepts:
 *
 * - every node says its `type`, except int-or-string (`x-kubernetes-int-or-string` with
 *   `anyOf: [{type: integer}, {type: string}]`) and deliberately free-form nodes
 *   (`x-kubernetes-preserve-unknown-fields`, only where a schema asks for any object);
 * - maps are `additionalProperties: <schema>` (TypeBox writes `patternProperties`);
 * - `additionalProperties: false` goes (the API server prunes unknown fields, and strict field
 *   validation — kubectl's default — rejects them); `const` and unions of literals become `enum`;
 * - keywords OpenAPI v3.0 or Kubernetes do not support (`$ref`, `uniqueItems`, `if`, …) fail the
 *   generation with the path of the node, instead of producing a CRD the API server refuses.
 */
import { dump } from 'js-yaml';
import type { TObject } from 'typebox';

export type JsonSchemaProps = Record<string, unknown>;

/** Keywords copied as they are. */
const PASS_THROUGH = new Set([
  'description', 'type', 'format', 'default', 'enum', 'maximum', 'minimum', 'multipleOf', 'maxLength', 'minLength', 'pattern',
  'maxItems', 'minItems', 'maxProperties', 'minProperties', 'required', 'nullable', 'title', 'example',
  'x-kubernetes-int-or-string', 'x-kubernetes-preserve-unknown-fields', 'x-kubernetes-embedded-resource',
  'x-kubernetes-list-type', 'x-kubernetes-list-map-keys', 'x-kubernetes-map-type', 'x-kubernetes-validations',
]);
/** Keywords handled by the conversion itself. */
const CONVERTED = new Set(['properties', 'items', 'additionalProperties', 'patternProperties', 'anyOf', 'const', 'exclusiveMinimum', 'exclusiveMaximum']);

/** Converts a TypeBox schema into a structural OpenAPI v3 schema; throws naming the first node it cannot express. */
export function structuralSchema(schema: unknown, path = ''): JsonSchemaProps {
  if (schema === null || typeof schema !== 'object') throw new Error(`${path || '<root>'}: not a schema`);
  const s = schema as Record<string, unknown>;
  const out: JsonSchemaProps = {};
  for (const [key, value] of Object.entries(s)) {
    if (PASS_THROUGH.has(key)) out[key] = value;
    else if (!CONVERTED.has(key)) throw new Error(`${path || '<root>'}: keyword "${key}" has no structural OpenAPI equivalent`);
  }
  for (const bound of ['exclusiveMinimum', 'exclusiveMaximum'] as const) {
    // JSON Schema 2020 writes the bound itself; OpenAPI v3.0 a boolean beside minimum/maximum.
    if (typeof s[bound] === 'number') {
      out[bound === 'exclusiveMinimum' ? 'minimum' : 'maximum'] = s[bound];
      out[bound] = true;
    }
  }
  if ('const' in s) out['enum'] = [s['const']];
  if (s['x-kubernetes-int-or-string'] === true) {
    delete out['type'];
    out['anyOf'] = [{ type: 'integer' }, { type: 'string' }];
  } else if (Array.isArray(s['anyOf'])) {
    const literals = (s['anyOf'] as Array<Record<string, unknown>>).map((branch) => branch['const']);
    if (literals.some((l) => l === undefined)) throw new Error(`${path || '<root>'}: a union other than int-or-string or of literals is not structural`);
    out['enum'] = literals;
  }
  if (Array.isArray(out['enum']) && out['type'] === undefined) {
    const types = new Set((out['enum'] as unknown[]).map((v) => (typeof v === 'number' ? (Number.isInteger(v) ? 'integer' : 'number') : typeof v)));
    if (types.size !== 1) throw new Error(`${path}: enum values of mixed types`);
    out['type'] = [...types][0];
  }
  if (s['properties'] && Object.keys(s['properties']).length > 0) {
    out['properties'] = Object.fromEntries(Object.entries(s['properties'] as Record<string, unknown>).map(([k, v]) => [k, structuralSchema(v, `${path}.${k}`)]));
  }
  if (s['items']) {
    if (Array.isArray(s['items'])) throw new Error(`${path}: tuple items are not structural`);
    out['items'] = structuralSchema(s['items'], `${path}[]`);
  }
  const patterns = s['patternProperties'] as Record<string, unknown> | undefined;
  if (patterns) {
    const keys = Object.keys(patterns);
    if (keys.length !== 1 || keys[0] !== '^.*$') throw new Error(`${path}: only maps with any string key are structural (got ${keys.join(', ')})`);
    out['additionalProperties'] = structuralSchema(patterns[keys[0]!], `${path}[*]`);
  }
  const additional = s['additionalProperties'];
  if (additional === true) out['x-kubernetes-preserve-unknown-fields'] = true;
  else if (additional && typeof additional === 'object') out['additionalProperties'] = structuralSchema(additional, `${path}[*]`);
  if (out['type'] === undefined && out['x-kubernetes-int-or-string'] !== true && out['x-kubernetes-preserve-unknown-fields'] !== true) {
    throw new Error(`${path || '<root>'}: every node of a structural schema needs a type`);
  }
  if (out['type'] === 'object' && out['properties'] && out['additionalProperties']) {
    throw new Error(`${path || '<root>'}: properties and additionalProperties exclude each other in a structural schema`);
  }
  // Type and description first: the generated file reads like a hand-written CRD.
  const { type, description, ...rest } = out;
  return { ...(type !== undefined ? { type } : {}), ...(description !== undefined ? { description } : {}), ...rest };
}

/** A `kubectl get` column (`additionalPrinterColumns`). */
export interface PrinterColumn {
  readonly name: string;
  readonly type: 'string' | 'integer' | 'number' | 'boolean' | 'date';
  /** JSONPath into the object, e.g. `.status.injectedPods`. */
  readonly jsonPath: string;
  readonly description?: string;
  /** 0: shown by default; higher: only with `-o wide`. */
  readonly priority?: number;
  readonly format?: string;
}

/**
 * What a CRD version is made of: an API type's names and schema. An `ApiDefinition` (define.ts)
 * extends it; defined here so crd.ts depends on nothing of define.ts, which builds on it.
 */
export interface CrdVersionNames {
  readonly group: string;
  readonly version: string;
  readonly kind: string;
  readonly plural: string;
  readonly singular: string;
  readonly shortNames: readonly string[];
  readonly categories: readonly string[];
  readonly scope: 'Namespaced' | 'Cluster';
  /** The whole object's schema (apiVersion, kind, metadata, spec, status). */
  readonly schema: TObject;
  readonly printerColumns: readonly PrinterColumn[];
}

/** One version of a CRD, as {@link customResourceDefinition} needs it. */
export interface CrdVersionSource extends CrdVersionNames {
  /** The version objects are stored in; default the first. */
  readonly storage?: boolean;
}

/**
 * The CRD serving `versions` (all of one group and kind; the first is stored unless one says
 * `storage: true`), each with the status subresource and its printer columns.
 */
export function customResourceDefinition(versions: readonly CrdVersionSource[]): Record<string, unknown> {
  const first = versions[0];
  if (!first) throw new Error('a CRD needs at least one version');
  for (const v of versions) {
    if (v.group !== first.group || v.kind !== first.kind || v.plural !== first.plural || v.scope !== first.scope) {
      throw new Error(`${v.kind}.${v.group}/${v.version}: versions of one CRD must share group, kind, plural and scope`);
    }
  }
  const stored = versions.some((v) => v.storage) ? versions.find((v) => v.storage)! : first;
  return {
    apiVersion: 'apiextensions.k8s.io/v1',
    kind: 'CustomResourceDefinition',
    metadata: { name: `${first.plural}.${first.group}`, labels: { 'app.kubernetes.io/part-of': 'crowsnest' } },
    spec: {
      group: first.group,
      names: {
        kind: first.kind,
        listKind: `${first.kind}List`,
        plural: first.plural,
        singular: first.singular,
        ...(first.shortNames.length ? { shortNames: [...first.shortNames] } : {}),
        ...(first.categories.length ? { categories: [...first.categories] } : {}),
      },
      scope: first.scope,
      versions: versions.map((v) => ({
        name: v.version,
        served: true,
        storage: v === stored,
        schema: { openAPIV3Schema: rootSchema(v.schema) },
        subresources: { status: {} },
        ...(v.printerColumns.length ? { additionalPrinterColumns: v.printerColumns.map((c) => ({ ...c })) } : {}),
      })),
    },
  };
}

/**
 * The object's schema; `metadata` is the API server's to validate (a CRD may not constrain it
 * beyond name and generateName), so it is left as a plain object.
 */
function rootSchema(schema: unknown): JsonSchemaProps {
  const root = structuralSchema(schema);
  const properties = root['properties'] as Record<string, JsonSchemaProps> | undefined;
  if (properties?.['metadata']) properties['metadata'] = { type: 'object' };
  return root;
}

/** The CRD as the YAML file the chart carries, with a header saying where it comes from. */
export function crdYaml(crd: Record<string, unknown>, source: string): string {
  return `# Generated by \`make crds\` from ${source}: edit the definition there, not this file.\n${dump(crd, { lineWidth: -1, noRefs: true })}`;
}
