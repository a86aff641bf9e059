/**
 * Our own validator for an API schema: the same verdict the API server reaches with the CRD
 * generated from that schema, with errors a user can act on (`spec.httpPort: must be a port number
 * …`). Order of work follows the API server: defaults first, then the OpenAPI checks, then the
 * rules (CEL there, their TypeScript twins here) on every value whose own shape is valid.
 */
import type { TSchema } from 'typebox';
import { Compile } from 'typebox/compile';
import { Value } from 'typebox/value';
import { rulesOf } from './schema.ts';

/** One problem with one field. */
export interface FieldError {
  /** Kubernetes-style field path: `spec.podSelector.matchExpressions[0].values`. */
  readonly field: string;
  readonly message: string;
}

export type ValidationResult<T> =
  | { readonly valid: true; /** The input with defaults applied (a copy). */ readonly value: T }
  | { readonly valid: false; readonly errors: readonly FieldError[] };

/** One line per error, as `kubectl` shows the API server's. */
export function formatErrors(errors: readonly FieldError[]): string {
  return errors.map((e) => `${e.field || '<object>'}: ${e.message}`).join('; ');
}

/** A validator compiled once per schema; call it per object. */
export function validatorFor<T>(schema: TSchema): (value: unknown) => ValidationResult<T> {
  const compiled = Compile(schema);
  return (input) => {
    const value = Value.Default(schema, structuredClone(input)) as unknown;
    const errors: FieldError[] = [];
    const invalidPaths: string[] = [];
    if (!compiled.Check(value)) {
      for (const error of compiled.Errors(value) as Iterable<TypeBoxError>) {
        const described = describe(error);
        invalidPaths.push(error.instancePath);
        if (described) errors.push({ field: fieldPath(schema, described.pointer), message: described.message });
      }
    }
    walkRules(schema, value, '', (pointer, message, fromRule = true) => {
      // A value whose own shape is wrong gets no rule errors on top (CEL could not type it).
      if (fromRule && invalidPaths.some((p) => p === pointer || p.startsWith(`${pointer}/`))) return;
      errors.push({ field: fieldPath(schema, pointer), message });
    });
    return errors.length === 0 ? { valid: true, value: value as T } : { valid: false, errors: dedupe(errors) };
  };
}

interface TypeBoxError {
  readonly keyword: string;
  readonly instancePath: string;
  readonly schemaPath: string;
  readonly params: Record<string, unknown>;
  readonly message: string;
}

/**
 * The error as the API server words it (so both read alike), on the field it is about; undefined
 * for errors another one already says better.
 */
function describe(error: TypeBoxError): { pointer: string; message: string } | undefined {
  const at = (message: string, pointer = error.instancePath) => ({ pointer, message });
  const p = error.params;
  // Branches of an int-or-string: the anyOf error itself says it.
  if (/\/anyOf\/\d+$/.test(error.schemaPath)) return undefined;
  switch (error.keyword) {
    case 'anyOf':
      return at('must be of type integer or string');
    case 'required':
      // One error per missing field, on that field, as the API server reports it.
      return at('Required value', `${error.instancePath}/${escapePointer(((p['requiredProperties'] as string[] | undefined) ?? [])[0] ?? '')}`);
    case 'additionalProperties':
    case 'boolean':
      // Unknown fields are reported by the walk, one per field.
      return undefined;
    case 'enum':
      return at(`Unsupported value: supported values: ${((p['allowedValues'] as unknown[] | undefined) ?? []).map((v) => JSON.stringify(v)).join(', ')}`);
    case 'type':
      return at(`must be of type ${String(p['type'])}`);
    case 'minimum':
      return at(`should be greater than or equal to ${String(p['limit'])}`);
    case 'maximum':
      return at(`should be less than or equal to ${String(p['limit'])}`);
    case 'minLength':
      return at(`should be at least ${String(p['limit'])} chars long`);
    case 'maxLength':
      return at(`may not be more than ${String(p['limit'])} bytes`);
    case 'maxItems':
      return at(`must have at most ${String(p['limit'])} items`);
    case 'maxProperties':
      return at(`must have at most ${String(p['limit'])} properties`);
    case 'pattern':
      return at(`should match '${String(p['pattern'])}'`);
    default:
      return at(error.message);
  }
}

function dedupe(errors: FieldError[]): FieldError[] {
  const seen = new Set<string>();
  return errors.filter((e) => {
    const key = `${e.field}\n${e.message}`;
    if (seen.has(key)) return false;
    seen.add(key);
    return true;
  });
}

/** Calls `report` for every rule that fails and every unknown field, walking the schema alongside the value. */
function walkRules(schema: unknown, value: unknown, pointer: string, report: (pointer: string, message: string, fromRule?: boolean) => void): void {
  if (value === undefined || schema === null || typeof schema !== 'object') return;
  const s = schema as Record<string, unknown>;
  for (const rule of rulesOf(schema)) {
    let ok: boolean;
    try {
      ok = rule.check(value);
    } catch {
      ok = false;
    }
    if (!ok) report(rule.fieldPath ? `${pointer}${rule.fieldPath.replaceAll('.', '/')}` : pointer, rule.message);
  }
  if (Array.isArray(value) && s['items']) {
    value.forEach((item, i) => { walkRules(s['items'], item, `${pointer}/${i}`, report); });
    return;
  }
  if (value === null || typeof value !== 'object' || Array.isArray(value)) return;
  const record = value as Record<string, unknown>;
  const properties = (s['properties'] ?? {}) as Record<string, unknown>;
  for (const [key, child] of Object.entries(properties)) walkRules(child, record[key], `${pointer}/${escapePointer(key)}`, report);
  const additional = Object.values((s['patternProperties'] ?? {}) as Record<string, unknown>)[0]
    ?? (typeof s['additionalProperties'] === 'object' ? s['additionalProperties'] : undefined);
  if (additional) {
    for (const [key, child] of Object.entries(record)) if (!(key in properties)) walkRules(additional, child, `${pointer}/${escapePointer(key)}`, report);
  } else if (s['properties'] && s['additionalProperties'] !== true) {
    // Strict field validation, as kubectl asks for by default: a field the schema does not know
    // is a typo to report, not something to drop silently.
    for (const key of Object.keys(record)) if (!(key in properties)) report(`${pointer}/${escapePointer(key)}`, 'unknown field', false);
  }
}

function escapePointer(segment: string): string {
  return segment.replaceAll('~', '~0').replaceAll('/', '~1');
}

/**
 * The Kubernetes field path of a JSON pointer, read along the schema so map keys and list indexes
 * come out as the API server writes them: `/spec/resources/requests/memory` →
 * `spec.resources.requests[memory]`, `/spec/podSelector/matchExpressions/0` →
 * `spec.podSelector.matchExpressions[0]`.
 */
export function fieldPath(schema: unknown, pointer: string): string {
  let out = '';
  let node = schema as Record<string, unknown> | undefined;
  for (const raw of pointer.split('/').slice(1)) {
    const segment = raw.replaceAll('~1', '/').replaceAll('~0', '~');
    const properties = node?.['properties'] as Record<string, Record<string, unknown>> | undefined;
    if (properties && segment in properties) {
      out += out ? `.${segment}` : segment;
      node = properties[segment];
    } else if (node?.['items'] && /^\d+$/.test(segment)) {
      out += `[${segment}]`;
      node = node['items'] as Record<string, unknown>;
    } else {
      const additional = Object.values((node?.['patternProperties'] ?? {}) as Record<string, unknown>)[0] ?? node?.['additionalProperties'];
      out += node?.['properties'] && !additional ? (out ? `.${segment}` : segment) : `[${segment}]`;
      node = typeof additional === 'object' ? additional as Record<string, unknown> : undefined;
    }
  }
  return out;
}
