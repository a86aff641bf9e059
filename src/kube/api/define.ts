/**
 * One definition per API type gives everything else: the TypeScript type (`ApiObject<typeof X>`),
 * the validator our code runs (webhooks, CLI, tests), the ResourceType the runtime reads and
 * writes it with, and the CRD the chart installs (`make crds`). Nothing about the type is written
 * twice, so the TS type, our validation and the API server's cannot drift apart.
 */
import Type, { type Static, type TSchema } from 'typebox';
import type { ObjectMeta, ResourceType } from '../objects/resources.ts';
import { type CrdVersionNames, crdYaml, customResourceDefinition, type PrinterColumn } from './crd.ts';

export type { PrinterColumn } from './crd.ts';
import { type ValidationResult, validatorFor } from './validate.ts';
import { API_GROUP } from '../objects/labels.ts';

/** The one API group of Crowsnest's own types (labels.ts names it for everything else too). */
export { API_GROUP };


export interface ApiDefinitionInit<Spec extends TSchema, Status extends TSchema> {
  readonly group?: string;
  readonly version: string;
  readonly kind: string;
  readonly plural: string;
  /** Default: the kind in lower case. */
  readonly singular?: string;
  readonly shortNames?: readonly string[];
  /** `kubectl get <category>` lists every type in it. Default: `crowsnest`. */
  readonly categories?: readonly string[];
  readonly scope: 'Namespaced' | 'Cluster';
  /** What an object of this kind is for (the CRD's description, `kubectl explain`). */
  readonly description: string;
  readonly spec: Spec;
  readonly status: Status;
  readonly printerColumns?: readonly PrinterColumn[];
}

/** An object of a defined type, as stored: the TS type the rest of the code uses. */
export interface ApiObjectOf<Spec, Status> {
  apiVersion: string;
  kind: string;
  metadata: ObjectMeta;
  spec: Spec;
  status?: Status;
}

export interface ApiDefinition<Spec extends TSchema = TSchema, Status extends TSchema = TSchema> extends CrdVersionNames {
  /** `group/version`. */
  readonly apiVersion: string;
  readonly description: string;
  /** For informers and writes. */
  readonly type: ResourceType;
  readonly specSchema: Spec;
  readonly statusSchema: Status;
  /**
   * Checks an object as the API server would (defaults applied first); on success returns the
   * defaulted copy, typed.
   */
  validate(obj: unknown): ValidationResult<ApiObjectOf<Static<Spec>, Static<Status>>>;
  /** The CRD object (one version). */
  crd(): Record<string, unknown>;
  /** The CRD as the chart's YAML file; `source` names the definition's file in the header. */
  crdYaml(source: string): string;
}

/** The TS type of objects of a definition: `type NetworkProber = ApiObject<typeof NetworkProberApi>`. */
export type ApiObject<D> = D extends ApiDefinition<infer Spec, infer Status> ? ApiObjectOf<Static<Spec>, Static<Status>> : never;
/** The TS type of a definition's spec. */
export type ApiSpec<D> = D extends ApiDefinition<infer Spec, TSchema> ? Static<Spec> : never;
/** The TS type of a definition's status. */
export type ApiStatus<D> = D extends ApiDefinition<TSchema, infer Status> ? Static<Status> : never;

const DNS_LABEL = /^[a-z]([-a-z0-9]*[a-z0-9])?$/;

export function defineApi<Spec extends TSchema, Status extends TSchema>(init: ApiDefinitionInit<Spec, Status>): ApiDefinition<Spec, Status> {
  const group = init.group ?? API_GROUP;
  const singular = init.singular ?? init.kind.toLowerCase();
  for (const [what, name] of [['plural', init.plural], ['singular', singular], ...(init.shortNames ?? []).map((n) => ['short name', n])] as const) {
    if (!DNS_LABEL.test(name)) throw new Error(`${init.kind}: ${what} "${name}" must be a lower-case DNS label`);
  }
  if (!/^v\d+((alpha|beta)\d+)?$/.test(init.version)) throw new Error(`${init.kind}: version "${init.version}" is not a Kubernetes version name`);
  const apiVersion = `${group}/${init.version}`;
  // metadata is the API server's business (name, labels, …); the CRD may not constrain it beyond
  // its type, so our validator does not either.
  const schema = Type.Object({
    apiVersion: Type.Optional(Type.String({ description: 'APIVersion defines the versioned schema of this representation of an object.' })),
    kind: Type.Optional(Type.String({ description: 'Kind is a string value representing the REST resource this object represents.' })),
    metadata: Type.Optional(Type.Object({}, { additionalProperties: true })),
    spec: init.spec,
    status: Type.Optional(init.status),
  }, { description: init.description });
  const validator = validatorFor<ApiObjectOf<Static<Spec>, Static<Status>>>(schema);
  const definition: ApiDefinition<Spec, Status> = {
    group,
    version: init.version,
    apiVersion,
    kind: init.kind,
    plural: init.plural,
    singular,
    shortNames: init.shortNames ?? [],
    categories: init.categories ?? ['crowsnest'],
    scope: init.scope,
    description: init.description,
    printerColumns: init.printerColumns ?? [],
    type: { group, version: init.version, resource: init.plural, kind: init.kind, namespaced: init.scope === 'Namespaced' },
    schema,
    specSchema: init.spec,
    statusSchema: init.status,
    validate: validator,
    crd: () => customResourceDefinition([definition]),
    crdYaml: (source) => crdYaml(definition.crd(), source),
  };
  return definition;
}
