import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { formatLabelSelector, matchesLabelSelector } from './selector.ts';

describe('matchesLabelSelector', () => {
  const labels = { app: 'db', tier: 'backend' };
  const table: ReadonlyArray<readonly [string, Parameters<typeof matchesLabelSelector>[0], Record<string, string> | undefined, boolean]> = [
    ['an absent selector selects nothing', undefined, labels, false],
    ['{} selects everything, even an unlabelled object', {}, undefined, true],
    ['matchLabels equal', { matchLabels: { app: 'db' } }, labels, true],
    ['matchLabels different value', { matchLabels: { app: 'web' } }, labels, false],
    ['matchLabels missing key', { matchLabels: { canary: 'true' } }, labels, false],
    ['In with the value', { matchExpressions: [{ key: 'tier', operator: 'In', values: ['cache', 'backend'] }] }, labels, true],
    ['In without the label', { matchExpressions: [{ key: 'zone', operator: 'In', values: ['a'] }] }, labels, false],
    ['NotIn with another value', { matchExpressions: [{ key: 'tier', operator: 'NotIn', values: ['cache'] }] }, labels, true],
    ['NotIn with the value', { matchExpressions: [{ key: 'tier', operator: 'NotIn', values: ['backend'] }] }, labels, false],
    ['NotIn without the label (apimachinery: holds)', { matchExpressions: [{ key: 'zone', operator: 'NotIn', values: ['a'] }] }, labels, true],
    ['Exists', { matchExpressions: [{ key: 'app', operator: 'Exists' }] }, labels, true],
    ['Exists, absent', { matchExpressions: [{ key: 'canary', operator: 'Exists' }] }, labels, false],
    ['DoesNotExist', { matchExpressions: [{ key: 'canary', operator: 'DoesNotExist' }] }, labels, true],
    ['DoesNotExist, present', { matchExpressions: [{ key: 'app', operator: 'DoesNotExist' }] }, labels, false],
    ['matchLabels and expressions are ANDed', { matchLabels: { app: 'db' }, matchExpressions: [{ key: 'tier', operator: 'In', values: ['cache'] }] }, labels, false],
    ['an unknown operator matches nothing', { matchExpressions: [{ key: 'app', operator: 'Equals', values: ['db'] }] }, labels, false],
    ['In without values matches nothing', { matchExpressions: [{ key: 'app', operator: 'In', values: [] }] }, labels, false],
    ['NotIn without values matches nothing (not everything)', { matchExpressions: [{ key: 'app', operator: 'NotIn' }] }, labels, false],
    ['Exists with values matches nothing', { matchExpressions: [{ key: 'app', operator: 'Exists', values: ['db'] }] }, labels, false],
    ['a label named like an Object.prototype member is not present', { matchExpressions: [{ key: 'constructor', operator: 'Exists' }] }, labels, false],
  ];
  for (const [name, selector, have, expected] of table) {
    it(name, () => assert.equal(matchesLabelSelector(selector, have), expected));
  }
});

describe('formatLabelSelector', () => {
  it('writes the kubectl -l syntax, keys and values sorted', () => {
    assert.equal(formatLabelSelector({
      matchLabels: { tier: 'backend', app: 'db' },
      matchExpressions: [{ key: 'zone', operator: 'In', values: ['b', 'a'] }, { key: 'env', operator: 'NotIn', values: ['dev'] }, { key: 'team', operator: 'Exists' }, { key: 'canary', operator: 'DoesNotExist' }],
    }), 'app=db,tier=backend,zone in (a,b),env notin (dev),team,!canary');
    assert.equal(formatLabelSelector({}), '');
  });
});
