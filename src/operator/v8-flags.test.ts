import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { OPERATOR_V8_FLAGS, operatorV8FlagsToApply } from './v8-flags.ts';

describe('the V8 flags the operator gives itself', () => {
  it('are a small young generation and size-favouring heap growth', () => {
    assert.deepEqual(OPERATOR_V8_FLAGS, ['--max-semi-space-size=1', '--optimize-for-size']);
  });

  it('leave alone any of them given to node on the command line or in NODE_OPTIONS, in either spelling', () => {
    assert.deepEqual(operatorV8FlagsToApply([]), ['--max-semi-space-size=1', '--optimize-for-size']);
    assert.deepEqual(operatorV8FlagsToApply(['--max-semi-space-size=16']), ['--optimize-for-size']);
    assert.deepEqual(operatorV8FlagsToApply(['--no-optimize-for-size', '--max_semi_space_size=0']), []);
    assert.deepEqual(operatorV8FlagsToApply(['/app/src/cli/entry.ts', 'operator', '--max-old-space-size=512']), ['--max-semi-space-size=1', '--optimize-for-size']);
  });
});
