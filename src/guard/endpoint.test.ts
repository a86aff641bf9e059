import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { parseHealthReport, parseLogBatch } from './endpoint.ts';
import { GuardSignals, undeclaredListeners } from './signals.ts';

describe('parseHealthReport', () => {
  it('reads a report and cuts long failure reasons', () => {
    const report = parseHealthReport(JSON.stringify({
      sequence: 3, ports: [{ container: 'app', port: 8080, method: 'http', probes: 4, failures: 1, lastFailure: 'x'.repeat(200) }],
      listening: [{ protocol: 'TCP', address: '0.0.0.0', port: 8080 }],
    }));
    assert.equal(report?.sequence, 3);
    assert.equal(report?.ports[0]?.lastFailure?.length, 64);
  });
  for (const [what, body] of [
    ['not JSON', '{'],
    ['an array', '[]'],
    ['a negative sequence', JSON.stringify({ sequence: -1, ports: [], listening: [] })],
    ['an unknown probe method', JSON.stringify({ sequence: 1, ports: [{ container: 'a', port: 1, method: 'icmp', probes: 1, failures: 0 }], listening: [] })],
    ['a socket protocol other than TCP and UDP', JSON.stringify({ sequence: 1, ports: [], listening: [{ protocol: 'SCTP', address: '::', port: 1 }] })],
  ] as const) {
    it(`refuses ${what}`, () => assert.equal(parseHealthReport(body), undefined));
  }
});

describe('parseLogBatch', () => {
  const count = { namespace: 'shop', pod: 'web-1', podUid: 'u1', container: 'app', policy: 'web', lines: 10, matched: 2, samples: ['panic: a', 7, 'b'.repeat(600)] };
  it('reads a batch, keeping string samples cut to 512 bytes', () => {
    const batch = parseLogBatch(JSON.stringify({ node: 'n1', batchId: 9, counts: [count] }));
    assert.deepEqual(batch?.counts[0]?.samples.map((s) => s.length), [8, 512]);
  });
  it('refuses more matching lines than lines', () => {
    assert.equal(parseLogBatch(JSON.stringify({ node: 'n1', batchId: 9, counts: [{ ...count, matched: 11 }] })), undefined);
  });
  it('refuses a batch without a batchId', () => {
    assert.equal(parseLogBatch(JSON.stringify({ node: 'n1', counts: [] })), undefined);
  });
});

describe('GuardSignals', () => {
  it('counts a log batch once, however often it is resent', () => {
    const signals = new GuardSignals();
    const counts = [{ namespace: 'shop', pod: 'web-1', podUid: 'u1', container: 'app', policy: 'web', lines: 10, matched: 4, samples: [] }];
    for (let i = 0; i < 3; i++) if (!signals.seenBatch('n1', 1)) signals.recordLogs('n1', 1, counts, 1_000);
    assert.equal(signals.of('u1')?.errorLines.count(1_000, 60_000), 4);
    assert.equal(signals.seenBatch('n2', 1), false, 'batch ids are per node');
  });
  it('ignores a health report repeating the last sequence (a retry)', () => {
    const signals = new GuardSignals();
    const ports = [{ container: 'app', port: 80, method: 'tcp' as const, probes: 2, failures: 2 }];
    assert.equal(signals.recordHealth('u1', 5, ports, [], 1_000), true);
    assert.equal(signals.recordHealth('u1', 5, ports, [], 2_000), false);
    assert.equal(signals.of('u1')?.healthFailures.count(2_000, 60_000), 2);
    assert.equal(signals.recordHealth('u1', 1, ports, [], 3_000), true, 'a restarted sidecar counts from 1 again');
    assert.equal(signals.of('u1')?.healthFailures.count(3_000, 60_000), 4);
  });
});

describe('undeclaredListeners', () => {
  it('leaves out declared ports (by protocol) and loopback listeners', () => {
    const listening = [
      { protocol: 'TCP' as const, address: '0.0.0.0', port: 8080 },
      { protocol: 'UDP' as const, address: '0.0.0.0', port: 8080 },
      { protocol: 'TCP' as const, address: '127.0.0.1', port: 9000 },
      { protocol: 'TCP' as const, address: '::1', port: 9001 },
      { protocol: 'TCP' as const, address: '::', port: 4444 },
    ];
    assert.deepEqual(undeclaredListeners(listening, [{ port: 8080, protocol: 'TCP' }]), [
      { protocol: 'UDP', address: '0.0.0.0', port: 8080 },
      { protocol: 'TCP', address: '::', port: 4444 },
    ]);
  });
});
