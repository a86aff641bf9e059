/**
 * Matching objects' labels against a metav1.LabelSelector, with apimachinery's semantics
 * (`metav1.LabelSelectorAsSelector` then `Matches`): `matchLabels` and every `matchExpressions`
 * requirement must all hold; `{}` selects everything; an absent selector selects nothing.
 *
 * A requirement this code does not understand (an unknown operator, In without values) makes the
 * selector match nothing, never everything: the API server refuses such selectors for our CRDs
 * already, and a selector that cannot be read must not turn into "every pod".
 */

export interface LabelSelectorRequirement {
  readonly key: string;
  readonly operator: string;
  readonly values?: readonly string[];
}

export interface LabelSelector {
  readonly matchLabels?: Readonly<Record<string, string>>;
  readonly matchExpressions?: readonly LabelSelectorRequirement[];
}

/** Whether `labels` satisfy `selector` (see the module comment for absent and empty selectors). */
export function matchesLabelSelector(selector: LabelSelector | undefined | null, labels: Readonly<Record<string, string>> | undefined): boolean {
  if (!selector) return false;
  const have = labels ?? {};
  for (const [key, value] of Object.entries(selector.matchLabels ?? {})) {
    if (have[key] !== value) return false;
  }
  return (selector.matchExpressions ?? []).every((requirement) => matchesRequirement(requirement, have));
}

function matchesRequirement(requirement: LabelSelectorRequirement, labels: Readonly<Record<string, string>>): boolean {
  const present = Object.hasOwn(labels, requirement.key);
  const values = requirement.values ?? [];
  switch (requirement.operator) {
    case 'In':
      return values.length > 0 && present && values.includes(labels[requirement.key]!);
    case 'NotIn':
      // apimachinery: a label that is absent satisfies NotIn.
      return values.length > 0 && (!present || !values.includes(labels[requirement.key]!));
    case 'Exists':
      return values.length === 0 && present;
    case 'DoesNotExist':
      return values.length === 0 && !present;
    default:
      return false;
  }
}

/**
 * The selector in the string syntax of `?labelSelector=` and `kubectl -l` (`app=web,tier in
 * (a,b),!canary`), for messages and list calls. `{}` is the empty string (everything).
 */
export function formatLabelSelector(selector: LabelSelector): string {
  const parts = Object.entries(selector.matchLabels ?? {}).sort(([a], [b]) => a.localeCompare(b)).map(([k, v]) => `${k}=${v}`);
  for (const r of selector.matchExpressions ?? []) {
    const values = [...(r.values ?? [])].sort().join(',');
    if (r.operator === 'In') parts.push(`${r.key} in (${values})`);
    else if (r.operator === 'NotIn') parts.push(`${r.key} notin (${values})`);
    else if (r.operator === 'Exists') parts.push(r.key);
    else if (r.operator === 'DoesNotExist') parts.push(`!${r.key}`);
    else parts.push(`${r.key} ${r.operator} (${values})`);
  }
  return parts.join(',');
}
