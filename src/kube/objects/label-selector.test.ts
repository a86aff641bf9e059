import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { LABEL_SELECTOR_CASES } from '../../../test/helpers/label-selectors.ts';
import { checkLabelSelector } from './label-selector.ts';

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
