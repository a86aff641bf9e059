import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { structuralSchema } from './crd.ts';
import { defineApi } from './define.ts';
import { intOrString, Type } from './schema.ts';

describe('structuralSchema', () => {
  it('writes int-or-string the one way Kubernetes accepts', () => {
    assert.deepEqual(structuralSchema(intOrString({ description: 'a port' })), {
      description: 'a port', 'x-kubernetes-int-or-string': true, maxLength: 64, anyOf: [{ type: 'integer' }, { type: 'string' }],
    });
  });

  it('turns TypeBox records into additionalProperties maps', () => {
    assert.deepEqual(structuralSchema(Type.Record(Type.String(), Type.Integer())), { type: 'object', additionalProperties: { type: 'integer' } });
  });

  it('turns enums and unions of literals into typed enums', () => {
    assert.deepEqual(structuralSchema(Type.Enum(['A', 'B'])), { type: 'string', enum: ['A', 'B'] });
    assert.deepEqual(structuralSchema(Type.Union([Type.Literal('x'), Type.Literal('y')])), { type: 'string', enum: ['x', 'y'] });
  });

  it('writes exclusive bounds the OpenAPI v3.0 way', () => {
    assert.deepEqual(structuralSchema(Type.Integer({ exclusiveMinimum: 0 })), { type: 'integer', minimum: 0, exclusiveMinimum: true });
  });

  it('drops additionalProperties: false (pruning does that job) and keeps unknown fields only where a schema asks', () => {
    assert.deepEqual(structuralSchema(Type.Object({ a: Type.String() }, { additionalProperties: false })), { type: 'object', required: ['a'], properties: { a: { type: 'string' } } });
    assert.deepEqual(structuralSchema(Type.Object({}, { additionalProperties: true })), { type: 'object', 'x-kubernetes-preserve-unknown-fields': true });
  });

  for (const [name, schema, message] of [
    ['a union that is not int-or-string', Type.Union([Type.String(), Type.Boolean()]), /union other than int-or-string/],
    ['uniqueItems', Type.Array(Type.String(), { uniqueItems: true }), /keyword "uniqueItems"/],
    ['a node without a type', Type.Object({ anything: Type.Unknown() }), /\.anything: every node .* needs a type/],
    ['a map with a key pattern', Type.Record(Type.String({ pattern: '^a' }), Type.String()), /only maps with any string key/],
  ] as const) {
    it(`refuses ${name}, naming the node`, () => assert.throws(() => structuralSchema(schema), message));
  }
});

/** The fields of a generated CRD that these tests read. */
interface GeneratedCrd {
  metadata: { name: string };
  spec: {
    names: unknown;
    scope: string;
    versions: { subresources: unknown; additionalPrinterColumns: unknown; schema: { openAPIV3Schema: { properties: Record<string, unknown>; required: string[] } } }[];
  };
}

describe('defineApi', () => {
  const api = defineApi({
    version: 'v1', kind: 'Widget', plural: 'widgets', scope: 'Cluster', description: 'A test widget.',
    spec: Type.Object({ size: Type.Integer({ minimum: 1 }) }), status: Type.Object({ ready: Type.Optional(Type.Boolean()) }),
    printerColumns: [{ name: 'Size', type: 'integer', jsonPath: '.spec.size' }],
  });

  it('generates a CRD with the status subresource, printer columns and a plain metadata object', () => {
    const crd = api.crd() as unknown as GeneratedCrd;
    assert.equal(crd.metadata.name, 'widgets.crowsnest.dev');
    assert.deepEqual(crd.spec.names, { kind: 'Widget', listKind: 'WidgetList', plural: 'widgets', singular: 'widget', categories: ['crowsnest'] });
    assert.equal(crd.spec.scope, 'Cluster');
    const version = crd.spec.versions[0]!;
    assert.deepEqual(version.subresources, { status: {} });
    assert.deepEqual(version.additionalPrinterColumns, [{ name: 'Size', type: 'integer', jsonPath: '.spec.size' }]);
    assert.deepEqual(version.schema.openAPIV3Schema.properties.metadata, { type: 'object' });
    assert.deepEqual(version.schema.openAPIV3Schema.required, ['spec']);
  });

  it('gives the ResourceType for the runtime', () => {
    assert.deepEqual(api.type, { group: 'crowsnest.dev', version: 'v1', resource: 'widgets', kind: 'Widget', namespaced: false });
  });

  it('refuses names kubectl could not use', () => {
    assert.throws(() => defineApi({ version: 'v1', kind: 'W', plural: 'Widgets', scope: 'Cluster', description: '', spec: Type.Object({}), status: Type.Object({}) }), /lower-case DNS label/);
    assert.throws(() => defineApi({ version: '1.0', kind: 'W', plural: 'ws', scope: 'Cluster', description: '', spec: Type.Object({}), status: Type.Object({}) }), /version/);
  });
});
