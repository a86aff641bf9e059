import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { resolveLogsAgentOptions } from './flags.ts';

const env = { CROWSNEST_GUARD_URL: 'https://guard.crowsnest-system.svc:9445/', CROWSNEST_NODE_NAME: 'node-a', CROWSNEST_GUARD_CA_FILE: '/etc/ca.crt' };

describe('logs-agent flags', () => {
  it('takes what the chart sets in the environment, with defaults for the rest', () => {
    assert.deepEqual(resolveLogsAgentOptions({ flags: {}, env }), {
      guardUrl: 'https://guard.crowsnest-system.svc:9445', nodeName: 'node-a', guardCa: { file: '/etc/ca.crt' },
      tokenFile: '/var/run/secrets/crowsnest.dev/guard/token', podLogsDir: '/var/log/pods', stateDir: '/var/lib/crowsnest/logs-agent',
      batchBytes: 8 * 1024 * 1024, metricsBindAddress: ':19092',
    });
  });

  it('refuses to run without the endpoint, the node or a CA, naming the flag', () => {
    assert.throws(() => resolveLogsAgentOptions({ flags: {}, env: { ...env, CROWSNEST_GUARD_URL: '' } }), /--guard-url/);
    assert.throws(() => resolveLogsAgentOptions({ flags: {}, env: { ...env, CROWSNEST_NODE_NAME: '' } }), /--node-name/);
    assert.throws(() => resolveLogsAgentOptions({ flags: {}, env: { ...env, CROWSNEST_GUARD_CA_FILE: '' } }), /--guard-ca-file/);
    assert.throws(() => resolveLogsAgentOptions({ flags: { 'guard-url': 'http://guard:9445' }, env }), /https:\/\//);
  });

  it('takes the CA as PEM from CROWSNEST_GUARD_CA when no file is named', () => {
    assert.deepEqual(resolveLogsAgentOptions({ flags: {}, env: { ...env, CROWSNEST_GUARD_CA_FILE: '', CROWSNEST_GUARD_CA: '-----BEGIN CERTIFICATE-----' } }).guardCa, { pem: '-----BEGIN CERTIFICATE-----' });
  });

  it('serves the log API only over HTTPS: a bind address needs a certificate and key', () => {
    assert.throws(() => resolveLogsAgentOptions({ flags: { 'log-api-bind-address': ':19093' }, env }), /--log-api-tls-cert-file and --log-api-tls-key-file are required/);
    assert.deepEqual(resolveLogsAgentOptions({ flags: { 'log-api-bind-address': ':19093', 'log-api-tls-cert-file': '/c', 'log-api-tls-key-file': '/k' }, env }).logApi, { bindAddress: ':19093', certFile: '/c', keyFile: '/k' });
  });
});
