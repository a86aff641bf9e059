import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { checkLabelSelector } from './label-selector.ts';

/**
 * Selectors and whether the API server accepts them (apimachinery `labels.Parse`). The same
 * table is checked against a real kube-apiserver in test/integration/faults/inputs.test.ts.
 */
export const LABEL_SELECTOR_CASES: readonly [string, boolean][] = [
  ['', true],
  ['app', true],
  ['!app', true],
  ['app=web', true],
  ['app==web', true],
  ['app!=web', true],
  ['app=', true],
  ['team=web,tier!=test', true],
  [' app = web , tier ', true],
  ['app in (web,api)', true],
  ['app notin (web)', true],
  ['app in (web,)', true],
  ['example.com/team=a-b_c.d', true],
  ['replicas>2', true],
  ['replicas<10', true],
  ['a b', false],
  ['tier in (web', false],
  ['app in ()', false],
  ['app=web,', false],
  [',app', false],
  ['app=we b', false],
  ['app=-web', false],
  ['app=' + 'x'.repeat(64), false],
  ['Example.com/team=a', false],
  ['a/b/c=d', false],
  ['/name=a', false],
  ['app>two', false],
  ['app=(web)', false],
  ['!', false],
  ['app notin web', false],
];

describe('checkLabelSelector', () => {
  for (const [selector, valid] of LABEL_SELECTOR_CASES) {
    it(`${valid ? 'accepts' : 'refuses'} ${JSON.stringify(selector)}`, () => {
      if (valid) checkLabelSelector(selector);
      else assert.throws(() => checkLabelSelector(selector), /at position \d+$/);
    });
  }

  it('says what is wrong and where', () => {
    assert.throws(() => checkLabelSelector('team=web,tier in (a'), { message: 'expected "," or ")" in the value list, found the end at position 20' });
    assert.throws(() => checkLabelSelector('a b'), { message: 'expected an operator (=, ==, !=, in, notin, <, >) or "," after "a", found "b" at position 3' });
  });
});
