import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { parseBoundQueues } from './netpol.ts';

describe('NetworkPolicy enforcer', () => {
  it('reads the bound queue numbers from /proc/net/netfilter/nfnetlink_queue', () => {
    const text = '  100  41234     0 2   128     0     0        7  1\n  101  41235     0 2   128     0     0        0  1\n';
    assert.deepEqual(parseBoundQueues(text), [100, 101]);
    assert.deepEqual(parseBoundQueues(''), []);
  });
});
