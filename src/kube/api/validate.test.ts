import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { durationMs, duration, labelSelector, quantityValue, Type, withRules } from './schema.ts';
import { fieldPath, validatorFor } from './validate.ts';

describe('validatorFor', () => {
  const schema = Type.Object({
    spec: withRules(Type.Object({
      min: Type.Integer({ default: 1 }),
      max: Type.Integer({ default: 5 }),
      period: Type.Optional(duration({ description: 'p', min: '1s', max: '1m' })),
      labels: Type.Optional(Type.Record(Type.String(), Type.String({ maxLength: 3 }))),
      selector: Type.Optional(labelSelector({ description: 's' })),
    }), [{ rule: 'self.min <= self.max', message: 'min must not exceed max', fieldPath: '.min', check: (s) => s.min <= s.max }]),
  });
  const validate = validatorFor<{ spec: { min: number; max: number } }>(schema);

  it('applies defaults before judging, and returns the defaulted copy', () => {
    const result = validate({ spec: {} });
    assert.ok(result.valid);
    assert.deepEqual(result.value, { spec: { min: 1, max: 5 } });
    const refused = validate({ spec: { min: 9 } });
    assert.deepEqual(refused.valid ? [] : refused.errors, [{ field: 'spec.min', message: 'min must not exceed max' }]);
  });

  it('writes field paths as the API server does: map keys and list indexes in brackets', () => {
    const result = validate({ spec: { labels: { 'app.kubernetes.io/name': 'toolong' }, selector: { matchExpressions: [{ key: 'a', operator: 'Exists', values: ['x'] }] } } });
    assert.equal(result.valid, false);
    if (result.valid) return;
    assert.deepEqual(result.errors.map((e) => e.field).sort(), ['spec.labels[app.kubernetes.io/name]', 'spec.selector.matchExpressions[0]']);
  });

  it('reports unknown fields, one per field, but not inside maps', () => {
    const result = validate({ spec: { typo: 1, labels: { anything: 'ok' } } });
    assert.deepEqual(result.valid ? [] : result.errors, [{ field: 'spec.typo', message: 'unknown field' }]);
  });

  it('reports a missing field on the field, and no rule error on a value of the wrong type', () => {
    const result = validatorFor(Type.Object({ a: Type.String(), b: withRules(Type.String(), [{ rule: 'false', message: 'never', check: () => false }]) }))({ b: 3 });
    assert.deepEqual(result.valid ? [] : result.errors, [{ field: 'a', message: 'Required value' }, { field: 'b', message: 'must be of type string' }]);
  });

  it('counts a rule that throws as failed', () => {
    const result = validatorFor(withRules(Type.Object({}), [{ rule: 'x', message: 'broken', check: () => { throw new Error('boom'); } }]))({});
    assert.equal(result.valid, false);
  });
});

describe('fieldPath', () => {
  it('reads escaped pointer segments', () => {
    assert.equal(fieldPath(Type.Object({ m: Type.Record(Type.String(), Type.String()) }), '/m/a~1b~0c'), 'm[a/b~c]');
  });
});

describe('durations and quantities', () => {
  for (const [text, ms] of [['10s', 10_000], ['1m30s', 90_000], ['1.5h', 5_400_000], ['500ms', 500], ['250us', 0.25], ['10', Number.NaN], ['1d', Number.NaN], ['-1s', Number.NaN], ['', Number.NaN]] as const) {
    it(`duration "${text}" is ${ms} ms`, () => assert.equal(durationMs(text), ms));
  }
  for (const [text, value] of [['500m', 0.5], ['1Gi', 2 ** 30], ['1024Mi', 2 ** 30], ['2', 2], [3, 3], ['1e3', 1000], ['1.5k', 1500], ['lots', Number.NaN], ['1Gb', Number.NaN]] as const) {
    it(`quantity ${JSON.stringify(text)} is ${value}`, () => assert.equal(quantityValue(text), value));
  }
});
