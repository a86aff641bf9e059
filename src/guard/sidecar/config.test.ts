import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { SIDECAR_ENV } from '../contract.ts';
import { DEFAULT_PROBE_PERIOD_MS, DEFAULT_PROBE_TIMEOUT_MS, SidecarConfigError, sidecarConfigFromEnv } from './config.ts';

const ENV = {
  CROWSNEST_POD_NAME: 'web-1',
  CROWSNEST_POD_NAMESPACE: 'shop',
  CROWSNEST_POD_IP: '10.1.0.7',
  CROWSNEST_NODE_NAME: 'node-a',
  CROWSNEST_GUARD_POLICY: 'web',
  CROWSNEST_GUARD_URL: 'https://crowsnest-guard.crowsnest.svc:9444',
  CROWSNEST_GUARD_CA: '-----BEGIN CERTIFICATE-----\n...',
  CROWSNEST_GUARD_TOKEN_FILE: '/var/run/secrets/crowsnest.dev/guard/token',
  CROWSNEST_GUARD_DECLARED_PORTS: '[{"container":"app","port":8080,"protocol":"TCP","name":"http"},{"container":"dns","port":53,"protocol":"UDP"}]',
  CROWSNEST_GUARD_METRICS_PORT: '19091',
};

describe('sidecarConfigFromEnv', () => {
  it('reads what the webhook injects (names as contract.ts writes them), with default tuning', () => {
    assert.deepEqual(Object.values(SIDECAR_ENV).sort(), Object.keys(ENV).sort());
    const config = sidecarConfigFromEnv(ENV);
    assert.deepEqual(config.declaredPorts, [{ container: 'app', port: 8080, protocol: 'TCP', name: 'http' }, { container: 'dns', port: 53, protocol: 'UDP' }]);
    assert.equal(config.podIp, '10.1.0.7');
    assert.equal(config.metricsPort, 19091);
    assert.equal(config.probePeriodMs, DEFAULT_PROBE_PERIOD_MS);
    assert.equal(config.probeTimeoutMs, DEFAULT_PROBE_TIMEOUT_MS);
  });

  it('fits the default timeout to a short period (at most half of it)', () => {
    assert.equal(sidecarConfigFromEnv({ ...ENV, CROWSNEST_GUARD_PROBE_PERIOD: '1s' }).probeTimeoutMs, 500);
    assert.equal(sidecarConfigFromEnv({ ...ENV, CROWSNEST_GUARD_PROBE_PERIOD: '1m' }).probeTimeoutMs, DEFAULT_PROBE_TIMEOUT_MS);
  });

  it('takes the tuning durations Go-style', () => {
    const config = sidecarConfigFromEnv({ ...ENV, CROWSNEST_GUARD_PROBE_PERIOD: '1s', CROWSNEST_GUARD_PROBE_TIMEOUT: '250ms', CROWSNEST_GUARD_REPORT_PERIOD: '1m30s' });
    assert.deepEqual([config.probePeriodMs, config.probeTimeoutMs, config.reportPeriodMs], [1_000, 250, 90_000]);
  });

  it('refuses a bad environment with a message naming the variable', () => {
    const cases: Array<[Record<string, string | undefined>, RegExp]> = [
      [{ CROWSNEST_GUARD_POLICY: undefined }, /CROWSNEST_GUARD_POLICY is not set/],
      [{ CROWSNEST_GUARD_URL: 'http://operator:9444' }, /CROWSNEST_GUARD_URL must be an https:\/\/ URL/],
      [{ CROWSNEST_GUARD_METRICS_PORT: '70000' }, /CROWSNEST_GUARD_METRICS_PORT must be a port number/],
      [{ CROWSNEST_GUARD_DECLARED_PORTS: '{"port":80}' }, /CROWSNEST_GUARD_DECLARED_PORTS must be a JSON list/],
      [{ CROWSNEST_GUARD_DECLARED_PORTS: 'not json' }, /CROWSNEST_GUARD_DECLARED_PORTS must be a JSON list/],
      [{ CROWSNEST_GUARD_DECLARED_PORTS: '[{"container":"app","port":0,"protocol":"TCP"}]' }, /CROWSNEST_GUARD_DECLARED_PORTS\[0\] must be/],
      [{ CROWSNEST_GUARD_DECLARED_PORTS: '[{"container":"app","port":80,"protocol":"HTTP"}]' }, /protocol: TCP\|UDP\|SCTP/],
      [{ CROWSNEST_GUARD_PROBE_PERIOD: 'often' }, /CROWSNEST_GUARD_PROBE_PERIOD must be a duration/],
      [{ CROWSNEST_GUARD_PROBE_PERIOD: '1s', CROWSNEST_GUARD_PROBE_TIMEOUT: '2s' }, /must be shorter than CROWSNEST_GUARD_PROBE_PERIOD/],
    ];
    for (const [change, message] of cases) {
      assert.throws(() => sidecarConfigFromEnv({ ...ENV, ...change }), (err: Error) => err instanceof SidecarConfigError && message.test(err.message), JSON.stringify(change));
    }
  });

  it('probes nothing when the pod declares no port, and falls back to loopback without a pod IP', () => {
    const config = sidecarConfigFromEnv({ ...ENV, CROWSNEST_GUARD_DECLARED_PORTS: '', CROWSNEST_POD_IP: undefined });
    assert.deepEqual(config.declaredPorts, []);
    assert.equal(config.podIp, '127.0.0.1');
  });
});
