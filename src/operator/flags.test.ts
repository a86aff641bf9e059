import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import type { FlagSources } from '../flags.ts';
import { OptionError } from '../flags.ts';
import { DEFAULT_SIDECAR_RESOURCES } from '../guard/inject.ts';
import { DEFAULT_AGENT_RESOURCES } from '../prober/inject.ts';
import { proberFlags } from '../prober/flags.ts';
import { resolveControllers, resolveOperatorOptions } from './flags.ts';

describe('resolveControllers', () => {
  const known = ['logaccess', 'prober', 'guard'];
  const cases: readonly [string, readonly string[]][] = [
    ['*', ['logaccess', 'prober', 'guard']],
    ['*,-guard', ['logaccess', 'prober']],
    ['-guard,*', ['logaccess', 'prober']],
    ['prober', ['prober']],
    ['guard, logaccess', ['logaccess', 'guard']],
    ['', []],
    ['-guard', []],
    ['*,prober', ['logaccess', 'prober', 'guard']],
    [' * , ', ['logaccess', 'prober', 'guard']],
  ];
  for (const [spec, expected] of cases) {
    test(`"${spec}" enables [${expected.join(', ')}] in known order`, () => {
      assert.deepEqual(resolveControllers(spec, known), expected);
    });
  }

  test('an unknown controller is rejected with the known names', () => {
    assert.throws(() => resolveControllers('*,-gaurd', known), /unknown controller "gaurd" \(known controllers: logaccess, prober, guard\)/);
  });

  test('a controller both enabled and disabled is rejected', () => {
    assert.throws(() => resolveControllers('guard,-guard', known), /"guard" is both enabled and disabled/);
  });

  test('with no controllers registered yet, "*" enables nothing and any name is unknown', () => {
    assert.deepEqual(resolveControllers('*', []), []);
    assert.throws(() => resolveControllers('logaccess', []), /known controllers: none yet/);
  });
});

describe('resolveOperatorOptions', () => {
  const fixedHost = { hostname: () => 'node-a', randomSuffix: () => 'fixed' };
  const noGlobals = {};
  function resolveWith(flags: FlagSources['flags'], env: FlagSources['env'] = {}) {
    return resolveOperatorOptions({ flags, env }, noGlobals, fixedHost);
  }

  test('without flags or env every option has its documented default', () => {
    assert.deepEqual(resolveWith({}), {
      kubeconfig: undefined,
      context: undefined,
      controllers: ['logaccess'],
      metricsBindAddress: ':8080',
      healthProbeBindAddress: ':8081',
      webhookPort: 9443,
      webhookCertDir: '/tmp/k8s-webhook-server/serving-certs',
      leaderElect: false,
      leaderElectionNamespace: 'crowsnest-system',
      leaderElectionId: 'crowsnest-operator',
      leaseDurationMs: 15_000,
      renewDeadlineMs: 10_000,
      retryPeriodMs: 2_000,
      workers: 2,
      shutdownTimeoutMs: 30_000,
      identity: 'node-a_fixed',
      logaccess: { namePrefix: 'podlogreader-', allowPodList: true, createServiceAccountAndRoleBinding: false, adoptPodlogreader: true },
      webhookCertificate: {
        mode: 'self',
        namespace: 'crowsnest-system',
        secret: 'crowsnest-webhook-cert',
        hosts: ['crowsnest-webhook', 'crowsnest-webhook.crowsnest-system', 'crowsnest-webhook.crowsnest-system.svc', 'crowsnest-webhook.crowsnest-system.svc.cluster.local'],
      },
      prober: {
        namespace: 'crowsnest-system',
        webhookConfiguration: 'crowsnest-prober',
        peerPort: 9444,
        peersUrl: 'https://crowsnest-webhook.crowsnest-system.svc:9444',
        agentImage: undefined,
        agentResources: DEFAULT_AGENT_RESOURCES,
      },
      guard: {
        namespace: 'crowsnest-system', port: 9445, url: 'https://crowsnest-webhook.crowsnest-system.svc:9445', logAgentServiceAccount: 'crowsnest-system/crowsnest-logs-agent', reportIntervalMs: 10_000,
        sidecar: { webhookConfiguration: 'crowsnest-guard-sidecar', image: undefined, resources: DEFAULT_SIDECAR_RESOURCES },
      },
    });
  });

  test('the kubeconfig and context come from the global options', () => {
    const options = resolveOperatorOptions({ flags: {}, env: {} }, { kubeconfig: '/k', context: 'dev' }, fixedHost);
    assert.equal(options.kubeconfig, '/k');
    assert.equal(options.context, 'dev');
  });

  test('flags set every option', () => {
    const options = resolveWith({
      controllers: '*',
      'metrics-bind-address': '127.0.0.1:9090',
      'health-probe-bind-address': '0',
      'webhook-port': '10250',
      'webhook-cert-dir': '/certs',
      'leader-elect': true,
      'leader-election-namespace': 'ops',
      'leader-election-id': 'lookout.example.com',
      'lease-duration': '30s',
      'renew-deadline': '20s',
      'retry-period': '5s',
      workers: '8',
      'shutdown-timeout': '1m',
      identity: 'me',
      'logaccess-name-prefix': 'logs-',
      'logaccess-allow-pod-list': false,
      'create-sa-and-rolebinding': true,
      'logaccess-adopt-podlogreader': false,
      'webhook-cert-mode': 'cert-manager',
      'webhook-cert-secret': 'certs',
      'webhook-service': 'lookout',
      'webhook-cert-hosts': '198.51.100.7, dev.example',
      'prober-webhook-configuration': 'lookout-prober',
      'prober-peer-port': '7443',
      'prober-peers-url': 'https://peers.example:7443/',
      'prober-agent-image': 'registry.example/crowsnest:1',
      'prober-agent-resources': '{"requests":{"cpu":"5m"},"limits":{"memory":"96Mi","cpu":1}}',
      'guard-port': '7445',
      'guard-url': 'https://guard.example:7445/',
      'guard-log-agent-service-account': 'logs',
      'guard-report-interval': '30s',
      'guard-sidecar-injection': 'false',
    });
    assert.deepEqual(options, {
      kubeconfig: undefined,
      context: undefined,
      controllers: ['logaccess', 'prober', 'guard'],
      metricsBindAddress: '127.0.0.1:9090',
      healthProbeBindAddress: '0',
      webhookPort: 10250,
      webhookCertDir: '/certs',
      leaderElect: true,
      leaderElectionNamespace: 'ops',
      leaderElectionId: 'lookout.example.com',
      leaseDurationMs: 30_000,
      renewDeadlineMs: 20_000,
      retryPeriodMs: 5_000,
      workers: 8,
      shutdownTimeoutMs: 60_000,
      identity: 'me',
      logaccess: { namePrefix: 'logs-', allowPodList: false, createServiceAccountAndRoleBinding: true, adoptPodlogreader: false },
      webhookCertificate: {
        mode: 'cert-manager',
        namespace: 'ops',
        secret: 'certs',
        hosts: ['lookout', 'lookout.ops', 'lookout.ops.svc', 'lookout.ops.svc.cluster.local', '198.51.100.7', 'dev.example'],
      },
      prober: {
        namespace: 'ops',
        webhookConfiguration: 'lookout-prober',
        peerPort: 7443,
        peersUrl: 'https://peers.example:7443',
        agentImage: 'registry.example/crowsnest:1',
        agentResources: { requests: { cpu: '5m' }, limits: { memory: '96Mi', cpu: '1' } },
      },
      guard: { namespace: 'ops', port: 7445, url: 'https://guard.example:7445', logAgentServiceAccount: 'ops/logs', reportIntervalMs: 30_000 },
    });
  });

  test('guard\'s sidecar injection: its configuration, image and resources, or none at all', () => {
    const options = resolveWith({
      'guard-sidecar-webhook-configuration': 'lookout-guard-sidecar', 'guard-sidecar-image': 'registry.example/crowsnest:1',
      'guard-sidecar-resources': '{"limits":{"memory":"96Mi"}}',
    });
    assert.deepEqual(options.guard.sidecar, { webhookConfiguration: 'lookout-guard-sidecar', image: 'registry.example/crowsnest:1', resources: { limits: { memory: '96Mi' } } });
    assert.equal(resolveWith({ 'guard-sidecar-injection': 'false' }).guard.sidecar, undefined);
    assert.throws(() => resolveWith({ 'guard-sidecar-resources': '{"limits":{"memory":"lots"}}' }), /--guard-sidecar-resources/);
  });

  test('run by hand, the default controllers leave out those the API server or pods must call; in a pod, all', () => {
    assert.deepEqual(resolveWith({}).controllers, ['logaccess']);
    assert.deepEqual(resolveWith({}, { KUBERNETES_SERVICE_HOST: '10.0.0.1' }).controllers, ['logaccess', 'prober', 'guard']);
    assert.deepEqual(resolveWith({ controllers: '*' }).controllers, ['logaccess', 'prober', 'guard'], 'asked for, it runs by hand too');
  });

  test('the prober runs where the pod runs: its namespace names the Secret, the certificate and the peers URL', () => {
    const options = resolveWith({ 'leader-election-namespace': 'lease-ns' }, { POD_NAMESPACE: 'monitoring' });
    assert.equal(options.prober.namespace, 'monitoring');
    assert.equal(options.prober.peersUrl, 'https://crowsnest-webhook.monitoring.svc:9444');
    assert.ok(options.webhookCertificate.hosts.includes('crowsnest-webhook.monitoring.svc'));
    assert.equal(options.webhookCertificate.namespace, 'monitoring');
  });

  test('bad prober and webhook certificate values are refused, naming the flag', () => {
    const cases: Array<[Record<string, string>, RegExp]> = [
      [{ 'webhook-cert-mode': 'vault' }, /--webhook-cert-mode.*must be one of self, cert-manager/],
      [{ 'prober-peers-url': 'http://peers:9444' }, /--prober-peers-url.*https:\/\//],
      [{ 'prober-peers-url': 'not a url' }, /--prober-peers-url.*URL/],
      [{ 'prober-peer-port': '70000' }, /--prober-peer-port/],
      [{ 'guard-url': 'http://guard:9445' }, /--guard-url.*https:\/\//],
      [{ 'guard-report-interval': '0s' }, /--guard-report-interval.*greater than zero/],
      [{ 'prober-agent-resources': '{"requests":{"cpu":"lots"}}' }, /--prober-agent-resources.*requests\.cpu: "lots" is not a Kubernetes quantity/],
      [{ 'prober-agent-resources': '{"request":{"cpu":"1"}}' }, /--prober-agent-resources.*unknown key "request"/],
      [{ 'prober-agent-resources': 'cpu=1' }, /--prober-agent-resources.*must be JSON/],
      [{ 'webhook-service': 'Web_Hook' }, /--webhook-service/],
    ];
    for (const [flags, message] of cases) assert.throws(() => resolveWith(flags), message, JSON.stringify(flags));
  });

  test('the --help default of --prober-agent-resources is the prober\'s own default', () => {
    assert.deepEqual(JSON.parse(String(proberFlags.agentResources.default)), DEFAULT_AGENT_RESOURCES);
  });

  test('CROWSNEST_* env variables set options the flags leave alone', () => {
    const options = resolveWith(
      { workers: '3' },
      { CROWSNEST_WORKERS: '5', CROWSNEST_LEASE_DURATION: '1m', CROWSNEST_METRICS_BIND_ADDRESS: ':9000', CROWSNEST_IDENTITY: 'from-env' },
    );
    assert.equal(options.workers, 3, 'a flag wins over env');
    assert.equal(options.leaseDurationMs, 60_000);
    assert.equal(options.metricsBindAddress, ':9000');
    assert.equal(options.identity, 'from-env');
  });

  test('a webhook port outside 1-65535 is refused, naming the flag', () => {
    for (const port of ['0', '65536', 'https', '-1']) {
      assert.throws(() => resolveWith({ 'webhook-port': port }), /--webhook-port.*port number from 1 to 65535/);
    }
  });

  test('an empty env variable counts as unset', () => {
    assert.equal(resolveWith({}, { CROWSNEST_WORKERS: '' }).workers, 2);
  });

  test('leader election is on by default in a pod and when the Lease namespace is named, off when run by hand', () => {
    assert.equal(resolveWith({}).leaderElect, false, 'run by hand: no Lease to wait for');
    assert.equal(resolveWith({}, { KUBERNETES_SERVICE_HOST: '10.96.0.1', POD_NAMESPACE: 'lookout' }).leaderElect, true);
    assert.equal(resolveWith({}, { KUBERNETES_SERVICE_HOST: '10.96.0.1' }).leaderElect, true, 'any pod, with or without POD_NAMESPACE');
    assert.equal(resolveWith({ 'leader-election-namespace': 'ops' }).leaderElect, true);
    assert.equal(resolveWith({}, { CROWSNEST_LEADER_ELECTION_NAMESPACE: 'ops' }).leaderElect, true);
    assert.equal(resolveWith({ 'leader-elect': true }).leaderElect, true);
    assert.equal(resolveWith({ 'leader-elect': false }, { KUBERNETES_SERVICE_HOST: '10.96.0.1' }).leaderElect, false);
  });

  test('leader election can be turned off by --no-leader-elect, --leader-elect=false or env', () => {
    assert.equal(resolveWith({ 'leader-elect': false }).leaderElect, false);
    assert.equal(resolveWith({ 'leader-elect': 'false' }).leaderElect, false);
    assert.equal(resolveWith({}, { CROWSNEST_LEADER_ELECT: '0' }).leaderElect, false);
    assert.equal(resolveWith({ 'leader-elect': true }, { CROWSNEST_LEADER_ELECT: 'false' }).leaderElect, true);
  });

  test('the Lease namespace defaults to POD_NAMESPACE, and CROWSNEST_ env wins over it', () => {
    assert.equal(resolveWith({}, { POD_NAMESPACE: 'lookout' }).leaderElectionNamespace, 'lookout');
    assert.equal(
      resolveWith({}, { POD_NAMESPACE: 'lookout', CROWSNEST_LEADER_ELECTION_NAMESPACE: 'other' }).leaderElectionNamespace,
      'other',
    );
  });

  test('the default identity is unique per process: hostname plus a random suffix', () => {
    let counter = 0;
    const next = { hostname: () => 'pod-1', randomSuffix: () => `r${++counter}` };
    const first = resolveOperatorOptions({ flags: {}, env: {} }, noGlobals, next).identity;
    const second = resolveOperatorOptions({ flags: {}, env: {} }, noGlobals, next).identity;
    assert.equal(first, 'pod-1_r1');
    assert.equal(second, 'pod-1_r2');
  });

  const badValues: readonly [string, FlagSources['flags'], FlagSources['env'], RegExp][] = [
    ['a malformed duration', { 'lease-duration': '15' }, {}, /^invalid value "15" for --lease-duration: missing unit/],
    ['a zero retry period', { 'retry-period': '0' }, {}, /--retry-period: must be greater than zero/],
    ['a negative shutdown timeout', { 'shutdown-timeout': '-1s' }, {}, /--shutdown-timeout: must not be negative/],
    ['zero workers', { workers: '0' }, {}, /--workers: must be a whole number/],
    ['fractional workers', { workers: '1.5' }, {}, /--workers: must be a whole number/],
    ['a bind address without port', { 'metrics-bind-address': '8080' }, {}, /--metrics-bind-address: bind address "8080" must be host:port/],
    ['an out-of-range port', { 'health-probe-bind-address': ':70000' }, {}, /--health-probe-bind-address: .*port must be a number/],
    ['an unknown controller', { controllers: 'gaurd' }, {}, /--controllers: unknown controller "gaurd"/],
    ['a name prefix that makes invalid names', { 'logaccess-name-prefix': 'Logs_' }, {}, /--logaccess-name-prefix: must be lower-case/],
    ['a non-boolean leader-elect', { 'leader-elect': 'yes please' }, {}, /--leader-elect: expected true or false/],
    ['an invalid namespace', { 'leader-election-namespace': 'Crows_Nest' }, {}, /--leader-election-namespace: must be a namespace name/],
    ['an invalid Lease name', { 'leader-election-id': 'crowsnest/operator' }, {}, /--leader-election-id: must be an object name/],
    ['an empty identity', { identity: ' ' }, {}, /--identity: must not be empty/],
    ['a bad env value', {}, { CROWSNEST_RENEW_DEADLINE: 'soon' }, /--renew-deadline \(from CROWSNEST_RENEW_DEADLINE\): invalid duration/],
    ['a renew deadline not below the lease duration', { 'leader-elect': true, 'lease-duration': '10s' }, {}, /--lease-duration \(10000ms\) must be greater than --renew-deadline \(10000ms\)/],
    ['a renew deadline too close to the retry period', { 'leader-elect': true, 'retry-period': '9s' }, {}, /--renew-deadline \(10000ms\) must be greater than 1.2 × --retry-period/],
  ];
  for (const [what, flags, env, message] of badValues) {
    test(`${what} is an OptionError naming the flag`, () => {
      assert.throws(
        () => resolveWith(flags, env),
        (err: unknown) => err instanceof OptionError && message.test(err.message) && !err.message.includes('\n'),
      );
    });
  }

  test('leader election timings are not checked when leader election is off', () => {
    const options = resolveWith({ 'leader-elect': false, 'lease-duration': '1s' });
    assert.equal(options.leaseDurationMs, 1_000);
  });
});
