/**
 * The names Crowsnest writes into the cluster, kept in one place so that the field manager, the
 * labels that mark our objects and the selectors that find them again can never drift apart.
 */

/**
 * Server-side apply field managers, one per capability. Apply records field ownership per manager,
 * and a forced apply takes contested fields from every other manager: with one shared name, two
 * capabilities applying to the same object would each strip the fields the other one set.
 * Renaming one orphans the fields owned under the old name, unless the objects are migrated first
 * (see `migrateFieldManager` in writes.ts, which logaccess runs for {@link LEGACY_FIELD_MANAGER}).
 */
export const FIELD_MANAGERS = {
  logaccess: 'crowsnest-logaccess',
  prober: 'crowsnest-prober',
  guard: 'crowsnest-guard',
  /** The operator's own objects (webhook configurations, its certificates). */
  operator: 'crowsnest-operator',
} as const;

/** A field manager name from {@link FIELD_MANAGERS}. */
export type FieldManager = (typeof FIELD_MANAGERS)[keyof typeof FIELD_MANAGERS];

/**
 * The single field manager every write used before managers were split per capability. Objects
 * written by those versions still carry it in `metadata.managedFields`.
 */
export const LEGACY_FIELD_MANAGER = 'crowsnest';

/**
 * The one API group of Crowsnest: its CRDs, finalizers, label and annotation keys, and the
 * `apiVersion` of the documents it writes ({@link REPORT_API_VERSION}).
 */
export const API_GROUP = 'crowsnest.dev';

/**
 * `apiVersion` of the report documents Crowsnest writes: host scans, cluster port reports,
 * inventory run summaries. Readers go by `kind` (and the fields they need), so the documents of
 * earlier versions, which said `crowsnest.io/v1alpha1`, are still read, resent and diffed.
 */
export const REPORT_API_VERSION = `${API_GROUP}/v1alpha1` as const;

/**
 * Prefix of every finalizer Crowsnest sets (`crowsnest.dev/<what it cleans up>`): a finalizer
 * name must be a qualified name, and the group says whose it is to whoever finds it stuck.
 */
export const FINALIZER_PREFIX = 'crowsnest.dev/';

/** Recommended label naming the tool that manages an object. */
export const LABEL_MANAGED_BY = 'app.kubernetes.io/managed-by';
/** Value of {@link LABEL_MANAGED_BY} on objects Crowsnest created and may change or delete. */
export const MANAGED_BY_VALUE = 'crowsnest';

/** Recommended label naming the application an object belongs to. */
export const LABEL_PART_OF = 'app.kubernetes.io/part-of';
/** Value of {@link LABEL_PART_OF} on objects Crowsnest created. */
export const PART_OF_VALUE = 'crowsnest';

/** `reportingController` of the Events the operator records (events.k8s.io/v1 wants a `domain/name`). */
export const REPORTING_CONTROLLER = 'crowsnest.dev/operator';

/**
 * The labels every object we create carries. Returns a fresh object each call, so callers may
 * merge into it without affecting anyone else.
 */
export function managedLabels(): Record<string, string> {
  return {
    [LABEL_MANAGED_BY]: MANAGED_BY_VALUE,
    [LABEL_PART_OF]: PART_OF_VALUE,
  };
}

/** Label selector (`key=value`) matching the objects Crowsnest manages; for list and watch calls. */
export const MANAGED_SELECTOR = `${LABEL_MANAGED_BY}=${MANAGED_BY_VALUE}`;

/**
 * Whether `obj` is marked as managed by Crowsnest. Only the managed-by label counts: part-of is a
 * grouping hint that other tools may also set, while managed-by is our claim to change and delete.
 */
export function isManagedByUs(obj: { readonly metadata?: { readonly labels?: Readonly<Record<string, string>> } } | undefined): boolean {
  return obj?.metadata?.labels?.[LABEL_MANAGED_BY] === MANAGED_BY_VALUE;
}
