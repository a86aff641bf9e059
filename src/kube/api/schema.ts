/**
 * Building blocks of API schemas: TypeBox types (which give the TypeScript type through `Static`
 * and a JSON Schema our validator compiles), plus the Kubernetes shapes TypeBox does not know —
 * int-or-string, durations, quantities, label selectors, resource requirements, conditions — and
 * validation rules that exist twice: as a CEL `x-kubernetes-validations` rule the API server
 * evaluates, and as the same rule in TypeScript for our own validator. The fixture tests
 * (`*.fixtures.ts`, judged by both the API server and {@link validatorFor}) prove the two agree.
 *
 * Factories, not shared constants: a rule is attached to the schema object it validates, so every
 * field gets a schema object of its own.
 */
import Type, { type Static, type TSchema } from 'typebox';
import { CONDITION_LIMITS, CONDITION_REASON_PATTERN, CONDITION_TYPE_PATTERN } from '../objects/conditions.ts';

export { Type, type Static, type TSchema };

/** Where a schema keeps the TypeScript side of its rules (a symbol: never part of the JSON). */
export const RULE_CHECKS: unique symbol = Symbol('crowsnest.ruleChecks');

/**
 * One validation rule, in both languages. Write the message for a user who typed the value: name
 * what the field must be and give an example; the API server puts the field path in front of it.
 */
export interface ValidationRule<T> {
  /** CEL, with `self` bound to the field's value (`x-kubernetes-validations[].rule`). */
  readonly rule: string;
  readonly message: string;
  /** The same rule in TypeScript; true when the value is valid. */
  readonly check: (self: T) => boolean;
  /**
   * Field the error is reported on, relative to this schema (`.timeout`), when the rule sits on a
   * parent object to compare two fields.
   */
  readonly fieldPath?: string;
}

/** A rule's JSON side, as the CRD carries it. */
export interface CelRule {
  readonly rule: string;
  readonly message: string;
  readonly fieldPath?: string;
}

type WithRules = { 'x-kubernetes-validations'?: CelRule[]; [RULE_CHECKS]?: Array<ValidationRule<never>> };

/** Attaches `rules` to `schema` (mutating it) and returns it. */
export function withRules<S extends TSchema>(schema: S, rules: ReadonlyArray<ValidationRule<Static<S>>>): S {
  const target = schema as S & WithRules;
  target['x-kubernetes-validations'] = [
    ...(target['x-kubernetes-validations'] ?? []),
    ...rules.map(({ rule, message, fieldPath }) => ({ rule, message, ...(fieldPath ? { fieldPath } : {}) })),
  ];
  target[RULE_CHECKS] = [...(target[RULE_CHECKS] ?? []), ...(rules as unknown as Array<ValidationRule<never>>)];
  return schema;
}

/** The TypeScript rules attached to `schema` by {@link withRules}. */
export function rulesOf(schema: unknown): ReadonlyArray<ValidationRule<unknown>> {
  return ((schema as WithRules)[RULE_CHECKS] ?? []) as unknown as ReadonlyArray<ValidationRule<unknown>>;
}

// ---------------------------------------------------------------------------------------------
// int-or-string, ports

interface Described {
  readonly description: string;
}

/** A value that is an integer or a string (`x-kubernetes-int-or-string`); rules say which ones. */
export function intOrString(options: Described & { readonly default?: number | string }) {
  // maxLength bounds the cost the API server estimates for CEL rules on the string form.
  return Type.Union([Type.Integer(), Type.String()], { 'x-kubernetes-int-or-string': true, maxLength: 64, ...options });
}

/** Port numbers as strings: digits without a leading zero, so equal ports are equal strings. */
const PORT_STRING = /^[1-9][0-9]{0,4}$/;
const MAX_PORT = 65_535;

/**
 * A TCP port, 1–65535, given as an integer (`8080`) or as a string of digits (`"8080"`), the way
 * older manifests wrote it.
 */
export function portNumber(options: Described & { readonly default?: number }) {
  return withRules(intOrString(options), [{
    rule: `type(self) == int ? self >= 1 && self <= ${MAX_PORT} : self.matches('^[1-9][0-9]{0,4}$') && int(self) <= ${MAX_PORT}`,
    message: `must be a port number from 1 to ${MAX_PORT}: an integer such as 8080, or the same digits as a string ("8080")`,
    check: (self) => (typeof self === 'number' ? Number.isInteger(self) && self >= 1 && self <= MAX_PORT : PORT_STRING.test(self) && Number(self) <= MAX_PORT),
  }]);
}

/** A port given as an integer or a string of digits, as a number. */
export function portValue(port: number | string): number {
  return typeof port === 'number' ? port : Number(port);
}

// ---------------------------------------------------------------------------------------------
// Durations

/** Go duration syntax as `time.ParseDuration` and CEL's `duration()` read it (no sign, ASCII units). */
const DURATION_SOURCE = '^([0-9]+(\\.[0-9]+)?(h|ms|m|s|us|ns))+$';
const DURATION = new RegExp(DURATION_SOURCE);
const DURATION_TERM = /([0-9]+(?:\.[0-9]+)?)(h|ms|m|s|us|ns)/g;
const MS_PER_DURATION_UNIT: Readonly<Record<string, number>> = { h: 3_600_000, m: 60_000, s: 1_000, ms: 1, us: 1e-3, ns: 1e-6 };

/** Milliseconds of a duration string such as `"1m30s"`; NaN when it is not one. */
export function durationMs(text: string): number {
  if (!DURATION.test(text)) return Number.NaN;
  let total = 0;
  for (const [, amount, unit] of text.matchAll(DURATION_TERM)) total += Number(amount) * MS_PER_DURATION_UNIT[unit!]!;
  return total;
}

/** CEL that is true when `expr` (a string) is a duration string. */
export function celIsDuration(expr: string): string {
  return `${expr}.matches('${DURATION_SOURCE.replaceAll('\\', '\\\\')}')`;
}

/**
 * A duration string (`"10s"`, `"1m30s"`, `"500ms"`) between `min` and `max` (themselves duration
 * strings). Durations in our APIs are never bare numbers.
 */
export function duration(options: Described & { readonly min: string; readonly max: string; readonly default?: string }) {
  const { min, max, ...rest } = options;
  const [minMs, maxMs] = [durationMs(min), durationMs(max)];
  if (!(minMs <= maxMs)) throw new Error(`duration bounds ${min}..${max} are not durations in order`);
  return withRules(Type.String({ maxLength: 64, ...rest }), [{
    rule: `${celIsDuration('self')} && duration(self) >= duration('${min}') && duration(self) <= duration('${max}')`,
    message: `must be a duration from ${min} to ${max}, such as "10s", "1m30s" or "500ms" (units h, m, s, ms)`,
    check: (self) => durationMs(self) >= minMs && durationMs(self) <= maxMs,
  }]);
}

// ---------------------------------------------------------------------------------------------
// Quantities and resources

/** resource.Quantity's syntax, as controller-gen writes it into CRDs. */
const QUANTITY_SOURCE = '^(\\+|-)?(([0-9]+(\\.[0-9]*)?)|(\\.[0-9]+))(([KMGTPE]i)|[numkMGTPE]|([eE](\\+|-)?(([0-9]+(\\.[0-9]*)?)|(\\.[0-9]+))))?$';
const QUANTITY = new RegExp(QUANTITY_SOURCE);
const QUANTITY_PARTS = /^([+-]?(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+))(.*)$/;
const QUANTITY_SUFFIX: Readonly<Record<string, number>> = {
  '': 1, n: 1e-9, u: 1e-6, m: 1e-3, k: 1e3, M: 1e6, G: 1e9, T: 1e12, P: 1e15, E: 1e18,
  Ki: 2 ** 10, Mi: 2 ** 20, Gi: 2 ** 30, Ti: 2 ** 40, Pi: 2 ** 50, Ei: 2 ** 60,
};

/** The value of a Kubernetes quantity (`"500m"` → 0.5, `"1Gi"` → 1073741824); NaN when it is not one. */
export function quantityValue(quantity: number | string): number {
  if (typeof quantity === 'number') return quantity;
  if (!QUANTITY.test(quantity)) return Number.NaN;
  const [, number = '', suffix = ''] = QUANTITY_PARTS.exec(quantity) ?? [];
  const multiplier = QUANTITY_SUFFIX[suffix] ?? (/^[eE]/.test(suffix) ? 10 ** Number(suffix.slice(1)) : Number.NaN);
  return Number(number) * multiplier;
}

/** A non-negative resource quantity (`"100m"`, `"128Mi"`, `2`). */
export function quantity(options: Described) {
  return withRules(intOrString(options), [{
    rule: `type(self) == int ? self >= 0 : self.matches('${QUANTITY_SOURCE.replaceAll('\\', '\\\\')}') && !self.startsWith('-')`,
    message: 'must be a non-negative quantity such as "100m", "0.5", "128Mi" or 2',
    check: (self) => (typeof self === 'number' ? Number.isInteger(self) && self >= 0 : QUANTITY.test(self) && !self.startsWith('-')),
  }]);
}

/** At most this many resource names in requests or limits (CEL cost is bounded by it). */
const MAX_RESOURCE_NAMES = 8;

/** A container's `resources`: requests and limits, each request no more than its limit. */
export function resourceRequirements(options: Described) {
  const list = (what: string) => Type.Optional(Type.Record(Type.String(), quantity({ description: `${what} of this resource.` }), {
    description: `${what} per resource name (cpu, memory, ephemeral-storage).`,
    maxProperties: MAX_RESOURCE_NAMES,
  }));
  const q = (expr: string) => `quantity(string(${expr}))`;
  const valid = (expr: string) => `string(${expr}).matches('${QUANTITY_SOURCE.replaceAll('\\', '\\\\')}')`;
  return withRules(Type.Object({ requests: list('Minimum amount'), limits: list('Maximum amount') }, { ...options }), [{
    rule: `!has(self.requests) || !has(self.limits) || self.requests.all(k, !(k in self.limits) || !${valid('self.requests[k]')} || !${valid('self.limits[k]')} || ${q('self.requests[k]')}.compareTo(${q('self.limits[k]')}) <= 0)`,
    message: 'each request must be no more than the limit of the same resource',
    check: (self) => Object.entries(self.requests ?? {}).every(([name, request]) => {
      const limit = self.limits?.[name];
      return limit === undefined || !(quantityValue(request) > quantityValue(limit));
    }),
  }]);
}

// ---------------------------------------------------------------------------------------------
// Label selectors

const SELECTOR_OPERATORS = ['In', 'NotIn', 'Exists', 'DoesNotExist'] as const;

/** metav1.LabelSelector: matchLabels and matchExpressions, ANDed; `{}` selects everything. */
export function labelSelector(options: Described) {
  const requirement = withRules(Type.Object({
    key: Type.String({ description: 'The label key the requirement applies to.', minLength: 1, maxLength: 317 }),
    operator: Type.Enum([...SELECTOR_OPERATORS], { description: 'In, NotIn, Exists or DoesNotExist.' }),
    values: Type.Optional(Type.Array(Type.String({ maxLength: 63 }), { description: 'Values for In and NotIn; empty for Exists and DoesNotExist.', maxItems: 64 })),
  }), [{
    rule: "(self.operator == 'In' || self.operator == 'NotIn') == (has(self.values) && size(self.values) > 0)",
    message: 'values must be given for operator In and NotIn, and left out for Exists and DoesNotExist',
    check: (self) => (self.operator === 'In' || self.operator === 'NotIn') === ((self.values?.length ?? 0) > 0),
  }]);
  return Type.Object({
    matchLabels: Type.Optional(Type.Record(Type.String(), Type.String({ maxLength: 63 }), { description: 'Labels a pod must have, with these values.', maxProperties: 64 })),
    matchExpressions: Type.Optional(Type.Array(requirement, { description: 'Requirements on labels, all of which must hold.', maxItems: 32 })),
  }, { ...options, 'x-kubernetes-map-type': 'atomic' });
}

// ---------------------------------------------------------------------------------------------
// Conditions

/** metav1.Condition's schema, as Kubernetes publishes it. */
export function condition() {
  return Type.Object({
    type: Type.String({ description: 'Type of condition in CamelCase.', maxLength: CONDITION_LIMITS.typeMaxLength, pattern: CONDITION_TYPE_PATTERN }),
    status: Type.Enum(['True', 'False', 'Unknown'], { description: 'True, False or Unknown.' }),
    observedGeneration: Type.Optional(Type.Integer({ description: 'The .metadata.generation the condition was set from.', minimum: 0, format: 'int64' })),
    lastTransitionTime: Type.String({ description: 'When the condition last changed from one status to another.', format: 'date-time' }),
    reason: Type.String({ description: 'Programmatic identifier of the reason for the last transition, CamelCase.', minLength: 1, maxLength: CONDITION_LIMITS.reasonMaxLength, pattern: CONDITION_REASON_PATTERN }),
    message: Type.String({ description: 'Human-readable details about the transition.', maxLength: CONDITION_LIMITS.messageMaxLength }),
  });
}

/** `status.conditions`: one entry per type (a map list, so server-side apply merges by type). */
export function conditions(options: Described) {
  return Type.Array(condition(), { ...options, maxItems: 16, 'x-kubernetes-list-type': 'map', 'x-kubernetes-list-map-keys': ['type'] });
}
