import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { divertRules, NETPOL_CHAIN, parseBoundQueues } from './netpol.ts';

describe('NetworkPolicy divert rules', () => {
  it('queue new connections from and to the node\'s pods, after exempting root\'s own and established ones', () => {
    const lines = divertRules('198.18.8.0/24', 100).split('\n');
    assert.deepEqual(lines.filter((l) => l.startsWith('-A')), [
      `-A POSTROUTING -j ${NETPOL_CHAIN}`,
      `-A ${NETPOL_CHAIN} -m owner --uid-owner 0 -j RETURN`,
      `-A ${NETPOL_CHAIN} -m conntrack --ctstate ESTABLISHED,RELATED -j RETURN`,
      `-A ${NETPOL_CHAIN} -s 198.18.8.0/24 -j NFQUEUE --queue-num 100 --queue-bypass`,
      `-A ${NETPOL_CHAIN} -d 198.18.8.0/24 -j NFQUEUE --queue-num 100 --queue-bypass`,
    ]);
    assert.equal(lines[0], '*mangle');
    assert.ok(lines.includes('COMMIT'));
  });

  it('reads the bound queue numbers from /proc/net/netfilter/nfnetlink_queue', () => {
    const text = '  100  41234     0 2   128     0     0        7  1\n  101  41235     0 2   128     0     0        0  1\n';
    assert.deepEqual(parseBoundQueues(text), [100, 101]);
    assert.deepEqual(parseBoundQueues(''), []);
  });
});
