import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { applyPatch, createPatch, escapePointerSegment, jsonEqual } from './jsonpatch.ts';

const pod = () => ({
  apiVersion: 'v1', kind: 'Pod',
  metadata: { name: 'web', labels: { app: 'web' }, annotations: { 'example.com/a~b': 'x' } as Record<string, string> },
  spec: { containers: [{ name: 'app', image: 'app:1', ports: [{ containerPort: 8080 }] }] },
});

describe('createPatch', () => {
  it('is empty for equal documents, whatever the key order', () => {
    assert.deepEqual(createPatch({ a: 1, b: { c: [1, 2] } }, { b: { c: [1, 2] }, a: 1 }), []);
  });

  it('adds initContainers as a whole when the pod has none (the sidecar injector case)', () => {
    const mutated = pod() as ReturnType<typeof pod> & { spec: { initContainers?: unknown[] } };
    mutated.spec.initContainers = [{ name: 'net-prober', image: 'crowsnest:1', restartPolicy: 'Always' }];
    assert.deepEqual(createPatch(pod(), mutated), [{ op: 'add', path: '/spec/initContainers', value: mutated.spec.initContainers }]);
  });

  it('appends to existing initContainers with the "-" index, leaving the others untouched', () => {
    const before = { spec: { initContainers: [{ name: 'migrate' }, { name: 'istio-init' }] } };
    const after = { spec: { initContainers: [{ name: 'migrate' }, { name: 'istio-init' }, { name: 'net-prober' }] } };
    assert.deepEqual(createPatch(before, after), [{ op: 'add', path: '/spec/initContainers/-', value: { name: 'net-prober' } }]);
  });

  it('inserts at a position and removes by index when elements move', () => {
    assert.deepEqual(createPatch({ v: ['a', 'c'] }, { v: ['x', 'a', 'c'] }), [{ op: 'add', path: '/v/0', value: 'x' }]);
    assert.deepEqual(createPatch({ v: ['a', 'b', 'c'] }, { v: ['a', 'c'] }), [{ op: 'remove', path: '/v/1' }]);
  });

  it('escapes ~ and / in keys (annotations and labels with prefixes)', () => {
    const after = pod();
    after.metadata.annotations['netprober-container-deployed'] = 'true';
    (after.metadata.annotations as Record<string, string>)['crowsnest.dev/injected-by'] = 'prober/a~b';
    delete (after.metadata.annotations as Record<string, string | undefined>)['example.com/a~b'];
    assert.deepEqual(createPatch(pod(), after), [
      { op: 'remove', path: '/metadata/annotations/example.com~1a~0b' },
      { op: 'add', path: '/metadata/annotations/netprober-container-deployed', value: 'true' },
      { op: 'add', path: '/metadata/annotations/crowsnest.dev~1injected-by', value: 'prober/a~b' },
    ]);
    assert.equal(escapePointerSegment('a/~b'), 'a~1~0b');
  });

  it('replaces changed scalars and values whose type changed', () => {
    assert.deepEqual(createPatch({ a: 1, b: [1], c: null }, { a: 2, b: { x: 1 }, c: 'x' }), [
      { op: 'replace', path: '/a', value: 2 }, { op: 'replace', path: '/b', value: { x: 1 } }, { op: 'replace', path: '/c', value: 'x' },
    ]);
  });

  it('patches only the changed member inside an array element', () => {
    const after = pod();
    after.spec.containers[0]!.image = 'app:2';
    assert.deepEqual(createPatch(pod(), after), [{ op: 'replace', path: '/spec/containers/0/image', value: 'app:2' }]);
  });

  it('does not share values with the mutated object', () => {
    const after = { v: [{ deep: { x: 1 } }] };
    const ops = createPatch({}, after);
    after.v[0]!.deep.x = 2;
    assert.deepEqual(ops, [{ op: 'add', path: '/v', value: [{ deep: { x: 1 } }] }]);
  });

  it('with shareValues, puts after\'s own values into the operations (for a patch serialized at once)', () => {
    const added = { deep: { x: 1 } };
    const ops = createPatch({}, { v: added }, { shareValues: true });
    assert.equal((ops[0] as { value: unknown }).value, added);
  });

  // Random documents and random edits: applying the patch to the original must give the edit.
  it('round-trips: applyPatch(a, createPatch(a, b)) equals b for 2,000 random pairs', () => {
    let seed = 42;
    const random = (): number => {
      seed = (seed * 1_103_515_245 + 12_345) % 2 ** 31;
      return seed / 2 ** 31;
    };
    const keys = ['a', 'b/c', 'd~e', 'f', '-', '0'];
    const value = (depth: number): unknown => {
      const r = random();
      if (depth > 3 || r < 0.3) return [1, 'x', null, true, 2.5][Math.floor(random() * 5)];
      if (r < 0.65) return Array.from({ length: Math.floor(random() * 4) }, () => value(depth + 1));
      return Object.fromEntries(keys.filter(() => random() < 0.4).map((k) => [k, value(depth + 1)]));
    };
    const mutate = (v: unknown, depth: number): unknown => {
      if (random() < 0.2 || depth > 3) return value(depth);
      if (Array.isArray(v)) {
        const copy = v.map((item) => (random() < 0.3 ? mutate(item, depth + 1) : item));
        if (random() < 0.3) copy.splice(Math.floor(random() * (copy.length + 1)), 0, value(depth + 1));
        if (random() < 0.2 && copy.length) copy.splice(Math.floor(random() * copy.length), 1);
        return copy;
      }
      if (v && typeof v === 'object') {
        const copy: Record<string, unknown> = {};
        for (const [k, item] of Object.entries(v)) if (random() > 0.15) copy[k] = random() < 0.3 ? mutate(item, depth + 1) : item;
        if (random() < 0.3) copy[keys[Math.floor(random() * keys.length)]!] = value(depth + 1);
        return copy;
      }
      return value(depth);
    };
    for (let i = 0; i < 2_000; i++) {
      const before = { root: value(0) };
      const after = { root: mutate(before.root, 0) };
      const ops = createPatch(before, after);
      assert.ok(jsonEqual(applyPatch(before, ops), after), `pair ${i}: ${JSON.stringify(before)} → ${JSON.stringify(after)} via ${JSON.stringify(ops)}`);
    }
  });
});

describe('applyPatch', () => {
  it('refuses paths that do not exist and failed tests', () => {
    assert.throws(() => applyPatch({ a: {} }, [{ op: 'add', path: '/x/y', value: 1 }]), /does not exist/);
    assert.throws(() => applyPatch({ a: 1 }, [{ op: 'test', path: '/a', value: 2 }]), /test failed/);
    assert.throws(() => applyPatch({ a: [1] }, [{ op: 'remove', path: '/a/1' }]), /out of bounds/);
  });
});
