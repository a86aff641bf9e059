import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { Interner, StringInterner } from './intern.ts';

describe('Interner', () => {
  it('hands out one frozen instance per key, made once', () => {
    const interner = new Interner<{ readonly refs: string[] }>();
    let made = 0;
    const a = interner.get('k', () => ({ refs: [String(++made)] }));
    const b = interner.get('k', () => ({ refs: [String(++made)] }));
    assert.equal(a, b);
    assert.equal(made, 1);
    assert.ok(Object.isFrozen(a) && Object.isFrozen(a.refs), 'deeply frozen: shared values must not change');
  });

  it('starts over past its bound: values stay equal, only sharing is lost', () => {
    const interner = new Interner<{ v: number }>(2);
    const first = interner.get('a', () => ({ v: 1 }));
    interner.get('b', () => ({ v: 2 }));
    interner.get('c', () => ({ v: 3 }));
    assert.equal(interner.size, 1);
    const again = interner.get('a', () => ({ v: 1 }));
    assert.notEqual(again, first);
    assert.deepEqual(again, first);
  });
});

describe('StringInterner', () => {
  it('returns the first instance of each distinct string, and passes undefined through', () => {
    const strings = new StringInterner();
    const first = strings.intern(['bench', 'memory'].join('-'));
    assert.equal(strings.intern(['bench', 'memory'].join('-')), first);
    assert.equal(strings.intern(undefined), undefined);
  });
});
