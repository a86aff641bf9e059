import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { OptionError, type FlagValue } from '../flags.ts';
import { version } from '../version.ts';
import { resolvePortsCollectOptions } from './flags.ts';

/** No flag given on the command line. */
const NO_FLAGS: Record<string, FlagValue | undefined> = {};

function resolveWith(flags: Record<string, FlagValue | undefined>, env: Record<string, string | undefined>) {
  return resolvePortsCollectOptions({ flags, env });
}

describe('resolvePortsCollectOptions', () => {
  test('without flags or environment the defaults apply', () => {
    assert.deepEqual(resolveWith(NO_FLAGS, {}), {
      namespace: 'default',
      image: `ghcr.io/crowsnest/crowsnest:${version}`,
      processInfo: true,
      concurrency: 10,
      nodeTimeoutMs: 120_000,
      reportDir: './reports',
      keepLast: 30,
      output: 'text',
      reportFormat: 'crowsnest',
    });
    assert.match(version, /^\d+\.\d+\.\d+/);
  });

  test('every flag is taken', () => {
    const options = resolveWith(
      {
        namespace: 'crowsnest',
        image: 'registry.example/crowsnest:dev',
        'image-pull-policy': 'Never',
        concurrency: '25',
        timeout: '1m30s',
        'node-selector': 'node-role.kubernetes.io/worker',
        'priority-class-name': 'system-node-critical',
        'report-dir': '/var/lib/crowsnest/reports',
        'keep-last': '7',
        output: 'json',
        'report-format': 'node-collector',
      },
      {},
    );
    assert.deepEqual(options, {
      namespace: 'crowsnest',
      image: 'registry.example/crowsnest:dev',
      imagePullPolicy: 'Never',
      processInfo: true,
      concurrency: 25,
      nodeTimeoutMs: 90_000,
      nodeSelector: 'node-role.kubernetes.io/worker',
      reportDir: '/var/lib/crowsnest/reports',
      keepLast: 7,
      priorityClassName: 'system-node-critical',
      output: 'json',
      reportFormat: 'node-collector',
    });
    assert.throws(() => resolveWith({ 'report-format': 'netstat' }, {}), /--report-format/);
  });

  test('the namespace comes from POD_NAMESPACE, CROWSNEST_NAMESPACE before it, the flag before both', () => {
    assert.equal(resolveWith(NO_FLAGS, { POD_NAMESPACE: 'from-pod' }).namespace, 'from-pod');
    assert.equal(resolveWith(NO_FLAGS, { POD_NAMESPACE: 'from-pod', CROWSNEST_NAMESPACE: 'from-crowsnest' }).namespace, 'from-crowsnest');
    assert.equal(resolveWith({ ...NO_FLAGS, namespace: 'from-flag' }, { POD_NAMESPACE: 'from-pod', CROWSNEST_NAMESPACE: 'from-crowsnest' }).namespace, 'from-flag');
  });

  test('an empty environment variable counts as unset', () => {
    assert.equal(resolveWith(NO_FLAGS, { CROWSNEST_NAMESPACE: '', POD_NAMESPACE: 'from-pod' }).namespace, 'from-pod');
    assert.equal(resolveWith(NO_FLAGS, { PATH_REPORTS: '' }).reportDir, './reports');
  });

  test('the report directory is PATH_REPORTS before PATH_REPORT, the flag before both', () => {
    assert.equal(resolveWith(NO_FLAGS, { PATH_REPORT: '/seed/reports' }).reportDir, '/seed/reports');
    assert.equal(resolveWith(NO_FLAGS, { PATH_REPORT: '/seed/reports', PATH_REPORTS: '/chart/reports' }).reportDir, '/chart/reports');
    assert.equal(resolveWith(NO_FLAGS, { PATH_REPORTS: '/chart/reports', CROWSNEST_REPORT_DIR: '/crowsnest/reports' }).reportDir, '/crowsnest/reports');
    assert.equal(resolveWith({ ...NO_FLAGS, 'report-dir': './mine' }, { PATH_REPORT: '/seed/reports', PATH_REPORTS: '/chart/reports' }).reportDir, './mine');
  });

  test('CROWSNEST_* variables set the other options', () => {
    const options = resolveWith(NO_FLAGS, {
      CROWSNEST_IMAGE: 'mirror.example/crowsnest:1',
      CROWSNEST_IMAGE_PULL_POLICY: 'Always',
      CROWSNEST_CONCURRENCY: '3',
      CROWSNEST_TIMEOUT: '45s',
      CROWSNEST_NODE_SELECTOR: 'pool=edge',
      CROWSNEST_PRIORITY_CLASS_NAME: 'high',
      CROWSNEST_KEEP_LAST: '0',
    });
    assert.equal(options.image, 'mirror.example/crowsnest:1');
    assert.equal(options.imagePullPolicy, 'Always');
    assert.equal(options.concurrency, 3);
    assert.equal(options.nodeTimeoutMs, 45_000);
    assert.equal(options.nodeSelector, 'pool=edge');
    assert.equal(options.priorityClassName, 'high');
    assert.equal(options.keepLast, 0);
  });

  test('a flag wins over its environment variable', () => {
    const options = resolveWith({ ...NO_FLAGS, concurrency: '4', timeout: '10s', 'keep-last': '2' }, { CROWSNEST_CONCURRENCY: '3', CROWSNEST_TIMEOUT: '45s', CROWSNEST_KEEP_LAST: '9' });
    assert.equal(options.concurrency, 4);
    assert.equal(options.nodeTimeoutMs, 10_000);
    assert.equal(options.keepLast, 2);
  });

  test('--no-process-info turns process info off', () => {
    assert.equal(resolveWith({ ...NO_FLAGS, 'process-info': false }, {}).processInfo, false);
  });

  test('CROWSNEST_PROCESS_INFO=false turns process info off', () => {
    assert.equal(resolveWith(NO_FLAGS, { CROWSNEST_PROCESS_INFO: 'false' }).processInfo, false);
    assert.equal(resolveWith(NO_FLAGS, { CROWSNEST_PROCESS_INFO: 'true' }).processInfo, true);
  });

  test('--keep-last 0 keeps every report', () => {
    assert.equal(resolveWith({ ...NO_FLAGS, 'keep-last': '0' }, {}).keepLast, 0);
  });

  const invalid: readonly [string, Record<string, FlagValue>, Record<string, string>, string, string][] = [
    ['a namespace that is not a DNS label', { namespace: 'Team_A' }, {}, '--namespace', 'Team_A'],
    ['an invalid POD_NAMESPACE', {}, { POD_NAMESPACE: 'bad namespace' }, '--namespace', 'bad namespace'],
    ['a concurrency of 0', { concurrency: '0' }, {}, '--concurrency', '0'],
    ['a concurrency that is not a number', { concurrency: 'many' }, {}, '--concurrency', 'many'],
    ['a timeout without unit', { timeout: '30' }, {}, '--timeout', '30'],
    ['a zero timeout', { timeout: '0s' }, {}, '--timeout', '0s'],
    ['an invalid CROWSNEST_TIMEOUT', {}, { CROWSNEST_TIMEOUT: 'soon' }, '--timeout', 'soon'],
    ['a negative keep-last', { 'keep-last': '-1' }, {}, '--keep-last', '-1'],
    ['a fractional keep-last', { 'keep-last': '2.5' }, {}, '--keep-last', '2.5'],
    ['an unknown image pull policy', { 'image-pull-policy': 'Sometimes' }, {}, '--image-pull-policy', 'Sometimes'],
    ['a lowercase image pull policy', { 'image-pull-policy': 'always' }, {}, '--image-pull-policy', 'always'],
    ['a node selector the API server would refuse', { 'node-selector': 'pool in (a' }, {}, '--node-selector', 'pool in (a'],
    ['an invalid CROWSNEST_NODE_SELECTOR', {}, { CROWSNEST_NODE_SELECTOR: 'a b' }, '--node-selector', 'a b'],
    ['an empty report directory', { 'report-dir': '' }, {}, '--report-dir', ''],
    ['a timeout too large to be a number', { timeout: `${'9'.repeat(400)}h` }, {}, '--timeout', `${'9'.repeat(400)}h`],
  ];
  for (const [what, flags, env, flag, value] of invalid) {
    test(`${what} is an OptionError naming ${flag} and the value`, () => {
      assert.throws(
        () => resolveWith({ ...NO_FLAGS, ...flags }, env),
        (err: unknown) => err instanceof OptionError && err.flag === flag && err.message.includes(flag) && err.message.includes(`"${value}"`) && !err.message.includes('\n'),
      );
    });
  }

  test('an invalid value says what is wrong with it', () => {
    assert.throws(() => resolveWith({ ...NO_FLAGS, 'keep-last': 'all' }, {}), { message: 'invalid value "all" for --keep-last: must be a whole number (0 keeps all)' });
    assert.throws(() => resolveWith({ ...NO_FLAGS, 'image-pull-policy': 'Sometimes' }, {}), {
      message: 'invalid value "Sometimes" for --image-pull-policy: must be Always, IfNotPresent or Never',
    });
    assert.throws(() => resolveWith({ ...NO_FLAGS, concurrency: '0' }, {}), { message: 'invalid value "0" for --concurrency: must be a whole number of at least 1' });
  });

  test('an invalid environment value names the variable it came from', () => {
    assert.throws(() => resolveWith(NO_FLAGS, { CROWSNEST_TIMEOUT: 'soon' }), { message: 'invalid value "soon" for --timeout (from CROWSNEST_TIMEOUT): invalid duration "soon"' });
    assert.throws(() => resolveWith(NO_FLAGS, { POD_NAMESPACE: 'Team_A' }), { message: /^invalid value "Team_A" for --namespace \(from POD_NAMESPACE\): must be a namespace name/ });
    assert.throws(() => resolveWith(NO_FLAGS, { CROWSNEST_PROCESS_INFO: 'no thanks' }), { message: 'invalid value "no thanks" for --process-info (from CROWSNEST_PROCESS_INFO): expected true or false' });
  });
});
