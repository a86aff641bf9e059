import assert from 'node:assert/strict';
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { DEFAULT_TYPE_SELECTORS } from './types.ts';
import { OptionError } from '../flags.ts';
import { DEFAULT_CONFIG_DIR, resolveInventoryCollectOptions, rewriteSeedFlags, type InventorySources } from './flags.ts';

/** Sources with a config directory that does not exist unless `config` is given. */
function sources(init: {
  flags?: Record<string, string | boolean | undefined>;
  env?: Record<string, string | undefined>;
  clusterIdArgument?: string;
  config?: Record<string, string>;
  readConfigDir?: InventorySources['readConfigDir'];
} = {}): InventorySources {
  const config = init.config;
  return {
    flags: init.flags ?? {},
    env: init.env ?? {},
    ...(init.clusterIdArgument !== undefined ? { clusterIdArgument: init.clusterIdArgument } : {}),
    readConfigDir: init.readConfigDir ?? (() => (config ? { ...config } : undefined)),
  };
}

function optionError(fn: () => unknown): OptionError {
  try {
    fn();
  } catch (err) {
    assert.ok(err instanceof OptionError, `expected an OptionError, got ${String(err)}`);
    return err;
  }
  assert.fail('expected an OptionError, nothing was thrown');
}

describe('resolveInventoryCollectOptions: defaults', () => {
  it('uses the documented defaults when nothing is set', () => {
    assert.deepEqual(resolveInventoryCollectOptions(sources({ clusterIdArgument: 'prod-1' })), {
      clusterId: 'prod-1',
      selectors: { base: [...DEFAULT_TYPE_SELECTORS], add: [], remove: [] },
      ignoreNamespaces: [],
      pageSize: 500,
      concurrency: 4,
      qps: 50,
      burst: 100,
      redaction: { enabled: true, secretValueDigest: false },
      reportDir: './reports',
      format: 'ndjson',
      gzip: true,
      retention: { keepLast: 96, maxAgeMs: 0, maxUndelivered: 0 },
      chunkBytes: 4 * 1024 * 1024,
      maxObjectBytes: 0,
      timeoutMs: 30_000,
      uploadAttempts: 6,
      dryRun: false,
      debug: false,
      output: 'text',
      warnings: [],
    });
  });

  it('reads the default config directory, and tolerates its absence', () => {
    const asked: string[] = [];
    const options = resolveInventoryCollectOptions(sources({ clusterIdArgument: 'c', readConfigDir: (dir) => { asked.push(dir); return undefined; } }));
    assert.deepEqual(asked, [DEFAULT_CONFIG_DIR]);
    assert.equal(DEFAULT_CONFIG_DIR, '/etc/config');
    assert.equal(options.configDir, undefined);
  });
});

describe('resolveInventoryCollectOptions: precedence', () => {
  const cases: { name: string; flags?: Record<string, string>; env?: Record<string, string>; config?: Record<string, string>; pageSize: number }[] = [
    { name: 'a flag wins over env, config and default', flags: { 'page-size': '10' }, env: { CROWSNEST_PAGE_SIZE: '20' }, config: { pageSize: '30' }, pageSize: 10 },
    { name: 'CROWSNEST_* env wins over config and default', env: { CROWSNEST_PAGE_SIZE: '20' }, config: { pageSize: '30' }, pageSize: 20 },
    { name: 'an empty env variable counts as unset', env: { CROWSNEST_PAGE_SIZE: '' }, config: { pageSize: '30' }, pageSize: 30 },
    { name: 'the config directory wins over the default', config: { pageSize: '30' }, pageSize: 30 },
    { name: 'the default applies last', pageSize: 500 },
  ];
  for (const c of cases) {
    it(c.name, () => {
      const options = resolveInventoryCollectOptions(
        sources({ clusterIdArgument: 'c', flags: c.flags ?? {}, env: c.env ?? {}, ...(c.config ? { config: c.config } : {}) }),
      );
      assert.equal(options.pageSize, c.pageSize);
    });
  }

  it('reads the config directory named by --config, else by CROWSNEST_CONFIG', () => {
    for (const [init, expected] of [
      [{ flags: { config: '/from-flag' }, env: { CROWSNEST_CONFIG: '/from-env' } }, '/from-flag'],
      [{ env: { CROWSNEST_CONFIG: '/from-env' } }, '/from-env'],
    ] as const) {
      const asked: string[] = [];
      const options = resolveInventoryCollectOptions(
        sources({ ...init, clusterIdArgument: 'c', readConfigDir: (dir) => { asked.push(dir); return { concurrency: '7' }; } }),
      );
      assert.deepEqual(asked, [expected]);
      assert.equal(options.configDir, expected);
      assert.equal(options.concurrency, 7);
    }
  });

  it('reads list values from config files written as YAML-style bullets with comments', () => {
    const options = resolveInventoryCollectOptions(sources({
      clusterIdArgument: 'c',
      config: {
        addTypes: '- secrets\n- Events # noisy\n',
        removeTypes: 'pods, apps/*',
        namespaces: '# only these\n- default\n- kube-system',
        ignoreNamespaces: 'scratch',
        endpoint: 'https://inventory.example.com/v1/snapshots',
        labelSelector: 'team=web,tier!=test',
      },
    }));
    assert.deepEqual(options.selectors.add, ['secrets', 'events']);
    assert.deepEqual(options.selectors.remove, ['pods', 'apps/*']);
    assert.deepEqual(options.namespaces, ['default', 'kube-system']);
    assert.deepEqual(options.ignoreNamespaces, ['scratch']);
    assert.equal(options.endpoint, 'https://inventory.example.com/v1/snapshots');
    assert.equal(options.labelSelector, 'team=web,tier!=test');
  });

  it('parses every other option from flags', () => {
    const options = resolveInventoryCollectOptions(sources({
      clusterIdArgument: 'c',
      flags: {
        resources: 'pods,deployments.apps',
        qps: '2.5',
        burst: '3',
        'secret-digest': true,
        format: 'json',
        gzip: false,
        'keep-last': '0',
        'max-age': '168h',
        'max-undelivered': '672',
        'chunk-size': '512Ki',
        'max-object-size': '1M',
        timeout: '5s',
        'upload-attempts': '2',
        debug: true,
        output: 'json',
      },
    }));
    assert.deepEqual(options.selectors.base, ['pods', 'deployments.apps']);
    assert.equal(options.qps, 2.5);
    assert.equal(options.burst, 3);
    assert.deepEqual(options.redaction, { enabled: true, secretValueDigest: true });
    assert.equal(options.format, 'json');
    assert.equal(options.gzip, false);
    assert.deepEqual(options.retention, { keepLast: 0, maxAgeMs: 168 * 3_600_000, maxUndelivered: 672 });
    assert.equal(options.chunkBytes, 512 * 1024);
    assert.equal(options.maxObjectBytes, 1_000_000);
    assert.equal(options.timeoutMs, 5_000);
    assert.equal(options.uploadAttempts, 2);
    assert.equal(options.debug, true);
    assert.equal(options.output, 'json');
  });

  it('leaves namespaces unset for an empty list (all namespaces)', () => {
    const options = resolveInventoryCollectOptions(sources({ clusterIdArgument: 'c', config: { namespaces: '# none\n' } }));
    assert.equal('namespaces' in options, false);
  });
});

describe('resolveInventoryCollectOptions: report directory', () => {
  const cases: { name: string; env: Record<string, string>; config?: Record<string, string>; flags?: Record<string, string>; reportDir: string }[] = [
    { name: '--report-dir wins over every variable', flags: { 'report-dir': '/flag' }, env: { CROWSNEST_REPORT_DIR: '/ours', PATH_REPORTS: '/seed' }, reportDir: '/flag' },
    { name: 'CROWSNEST_REPORT_DIR wins over the seed names', env: { CROWSNEST_REPORT_DIR: '/ours', PATH_REPORTS: '/seed', PATH_REPORT: '/seed-singular' }, reportDir: '/ours' },
    { name: 'the seed\'s PATH_REPORTS is read', env: { PATH_REPORTS: '/seed', PATH_REPORT: '/seed-singular' }, config: { reportDir: '/config' }, reportDir: '/seed' },
    { name: 'the seed\'s PATH_REPORT is read too', env: { PATH_REPORT: '/seed-singular' }, config: { reportDir: '/config' }, reportDir: '/seed-singular' },
    { name: 'the config key reportDir comes after the variables', env: {}, config: { reportDir: '/config' }, reportDir: '/config' },
    { name: './reports is the default', env: {}, reportDir: './reports' },
  ];
  for (const c of cases) {
    it(c.name, () => {
      const options = resolveInventoryCollectOptions(sources({ clusterIdArgument: 'c', env: c.env, flags: c.flags ?? {}, ...(c.config ? { config: c.config } : {}) }));
      assert.equal(options.reportDir, c.reportDir);
    });
  }
});

describe('resolveInventoryCollectOptions: endpoint keys', () => {
  const cases: { name: string; env: Record<string, string>; accessKey?: string; secretKey?: string }[] = [
    { name: 'reads the seed\'s INFRALIGHT_ACCESS_KEY and INFRALIGHT_SECRET_KEY', env: { INFRALIGHT_ACCESS_KEY: 'seed-a', INFRALIGHT_SECRET_KEY: 'seed-s' }, accessKey: 'seed-a', secretKey: 'seed-s' },
    {
      name: 'prefers CROWSNEST_ACCESS_KEY and CROWSNEST_SECRET_KEY over the seed names',
      env: { CROWSNEST_ACCESS_KEY: 'ours-a', CROWSNEST_SECRET_KEY: 'ours-s', INFRALIGHT_ACCESS_KEY: 'seed-a', INFRALIGHT_SECRET_KEY: 'seed-s' },
      accessKey: 'ours-a',
      secretKey: 'ours-s',
    },
    { name: 'treats an empty CROWSNEST_ACCESS_KEY as unset', env: { CROWSNEST_ACCESS_KEY: '', INFRALIGHT_ACCESS_KEY: 'seed-a' }, accessKey: 'seed-a' },
    { name: 'leaves the keys out when none is set', env: {} },
  ];
  for (const c of cases) {
    it(c.name, () => {
      const options = resolveInventoryCollectOptions(sources({ clusterIdArgument: 'c', env: c.env }));
      assert.equal(options.accessKey, c.accessKey);
      assert.equal(options.secretKey, c.secretKey);
      assert.equal('accessKey' in options, c.accessKey !== undefined);
      assert.equal('secretKey' in options, c.secretKey !== undefined);
    });
  }

  it('rejects an endpoint with credentials in the URL, without repeating them', () => {
    for (const [init, from] of [
      [{ flags: { endpoint: 'https://user:pw-123@inventory.example/api' } }, ''],
      [{ env: { CROWSNEST_ENDPOINT: 'https://user:pw-123@inventory.example/api' } }, ' (from CROWSNEST_ENDPOINT)'],
      [{ flags: { endpoint: 'http://token-only@inventory.example/' } }, ''],
    ] as const) {
      const err = optionError(() => resolveInventoryCollectOptions(sources({ clusterIdArgument: 'c', ...init })));
      assert.equal(err.flag, '--endpoint');
      assert.match(err.message, new RegExp(`^invalid value "https?://\\*\\*\\*@inventory\\.example/(api)?" for --endpoint${from.replace(/[()]/g, '\\$&')}: credentials in the URL are not sent; use CROWSNEST_ACCESS_KEY/CROWSNEST_SECRET_KEY$`));
      assert.ok(!err.message.includes('pw-123') && !err.message.includes('token-only'), err.message);
    }
  });

  const clearText: { name: string; endpoint: string; env: Record<string, string>; dryRun?: boolean; warns: boolean }[] = [
    { name: 'warns when keys go to a plain http:// endpoint on another host', endpoint: 'http://inventory.example:8080/api?x=1', env: { CROWSNEST_ACCESS_KEY: 'a', CROWSNEST_SECRET_KEY: 's' }, warns: true },
    { name: 'warns for the seed\'s key names too', endpoint: 'http://10.0.0.7/api', env: { INFRALIGHT_ACCESS_KEY: 'a', INFRALIGHT_SECRET_KEY: 's' }, warns: true },
    { name: 'does not warn for https://', endpoint: 'https://inventory.example/api', env: { CROWSNEST_ACCESS_KEY: 'a', CROWSNEST_SECRET_KEY: 's' }, warns: false },
    { name: 'does not warn for 127.0.0.1', endpoint: 'http://127.0.0.1:9000/api', env: { CROWSNEST_ACCESS_KEY: 'a', CROWSNEST_SECRET_KEY: 's' }, warns: false },
    { name: 'does not warn for localhost', endpoint: 'http://localhost:9000/api', env: { CROWSNEST_ACCESS_KEY: 'a', CROWSNEST_SECRET_KEY: 's' }, warns: false },
    { name: 'does not warn for [::1]', endpoint: 'http://[::1]:9000/api', env: { CROWSNEST_ACCESS_KEY: 'a', CROWSNEST_SECRET_KEY: 's' }, warns: false },
    { name: 'does not warn without keys', endpoint: 'http://inventory.example/api', env: {}, warns: false },
    { name: 'does not warn in a dry run (nothing is sent)', endpoint: 'http://inventory.example/api', env: { CROWSNEST_ACCESS_KEY: 'a' }, dryRun: true, warns: false },
  ];
  for (const c of clearText) {
    it(c.name, () => {
      const options = resolveInventoryCollectOptions(sources({ clusterIdArgument: 'c', flags: { endpoint: c.endpoint, ...(c.dryRun ? { 'dry-run': true } : {}) }, env: c.env }));
      assert.equal(options.endpoint, c.endpoint);
      const host = new URL(c.endpoint).host;
      assert.deepEqual(options.warnings, c.warns
        ? [`--endpoint http://${host} is plain http:// to a host that is not this machine: the access and secret keys are sent unencrypted; use https://`]
        : []);
    });
  }

  it('warns about the login endpoint, not the data endpoint, when the keys go there', () => {
    const options = resolveInventoryCollectOptions(sources({ clusterIdArgument: 'c', flags: { endpoint: 'https://inventory.example' }, config: { loginEndpoint: 'http://login.example:8080/' }, env: { CROWSNEST_ACCESS_KEY: 'a', CROWSNEST_SECRET_KEY: 's' } }));
    assert.equal(options.loginEndpoint, 'http://login.example:8080/');
    assert.deepEqual(options.warnings, ['--login-endpoint http://login.example:8080 is plain http:// to a host that is not this machine: the access and secret keys are sent unencrypted; use https://']);
  });

  it('takes --login-endpoint from the flag, CROWSNEST_LOGIN_ENDPOINT or the seed\'s loginEndpoint key, checked like --endpoint', () => {
    for (const init of [{ flags: { 'login-endpoint': 'https://login.example' } }, { env: { CROWSNEST_LOGIN_ENDPOINT: 'https://login.example' } }, { config: { loginEndpoint: 'https://login.example' } }]) {
      const options = resolveInventoryCollectOptions(sources({ clusterIdArgument: 'c', ...init, env: { ...('env' in init ? init.env : {}), CROWSNEST_ACCESS_KEY: 'a', CROWSNEST_SECRET_KEY: 's' } }));
      assert.equal(options.loginEndpoint, 'https://login.example');
      assert.deepEqual(options.warnings, []);
    }
    const err = optionError(() => resolveInventoryCollectOptions(sources({ clusterIdArgument: 'c', config: { loginEndpoint: 'ftp://login.example' } })));
    assert.equal(err.flag, '--login-endpoint');
    assert.match(err.message, /^invalid value "ftp:\/\/login.example" for --login-endpoint \(from \/etc\/config\/loginEndpoint\): must be an http/);
  });

  it('warns that a login endpoint without keys does nothing', () => {
    const options = resolveInventoryCollectOptions(sources({ clusterIdArgument: 'c', flags: { endpoint: 'https://inventory.example', 'login-endpoint': 'https://login.example' } }));
    assert.deepEqual(options.warnings, ['--login-endpoint is set but no keys are: there is nothing to log in with, so no login happens']);
  });

  for (const [env, missing] of [[{ CROWSNEST_ACCESS_KEY: 'a' }, 'CROWSNEST_SECRET_KEY'], [{ INFRALIGHT_SECRET_KEY: 's' }, 'CROWSNEST_ACCESS_KEY']] as const) {
    it(`refuses one key without the other (${Object.keys(env)[0]} alone): the login needs both`, () => {
      const err = optionError(() => resolveInventoryCollectOptions(sources({ clusterIdArgument: 'c', flags: { endpoint: 'https://inventory.example' }, env })));
      assert.equal(err.flag, missing);
      assert.match(err.message, /key is set but the (access|secret) key is not: the endpoint's login needs both/);
    });
  }

  it('does not read the keys from the config directory', () => {
    const options = resolveInventoryCollectOptions(sources({ clusterIdArgument: 'c', config: { accessKey: 'x', secretKey: 'y' } }));
    assert.equal(options.accessKey, undefined);
    assert.equal(options.secretKey, undefined);
    assert.equal(options.warnings.length, 2);
    assert.match(options.warnings[0] ?? '', /unknown key "accessKey" ignored/);
  });
});

describe('resolveInventoryCollectOptions: cluster id', () => {
  it('takes the argument over CLUSTER_ID', () => {
    assert.equal(resolveInventoryCollectOptions(sources({ clusterIdArgument: 'from-arg', env: { CLUSTER_ID: 'from-env' } })).clusterId, 'from-arg');
  });

  it('falls back to CROWSNEST_CLUSTER_ID, then the seed\'s CLUSTER_ID; an empty variable counts as unset', () => {
    assert.equal(resolveInventoryCollectOptions(sources({ env: { CLUSTER_ID: 'seed_name-2', CROWSNEST_CLUSTER_ID: 'ours' } })).clusterId, 'ours');
    assert.equal(resolveInventoryCollectOptions(sources({ env: { CLUSTER_ID: 'seed_name-2' } })).clusterId, 'seed_name-2');
    assert.equal(resolveInventoryCollectOptions(sources({ env: { CLUSTER_ID: 'seed_name-2', CROWSNEST_CLUSTER_ID: '' } })).clusterId, 'seed_name-2');
  });

  for (const bad of ['Prod', 'prod.eu', 'a b', 'prod/1', 'ü']) {
    it(`rejects "${bad}", naming the allowed pattern`, () => {
      const err = optionError(() => resolveInventoryCollectOptions(sources({ clusterIdArgument: bad })));
      assert.equal(err.flag, 'clusterId');
      assert.equal(err.message, `invalid cluster id "${bad}": use only lowercase letters, digits, "-" and "_" (^[a-z0-9-_]+$)`);
    });
  }

  it('is required, with a message on how to give it', () => {
    for (const init of [{}, { env: { CLUSTER_ID: '' } }, { clusterIdArgument: '' }]) {
      const err = optionError(() => resolveInventoryCollectOptions(sources(init)));
      assert.equal(err.flag, 'clusterId');
      assert.match(err.message, /^a cluster id is required: pass it as the argument or set CLUSTER_ID/);
    }
  });

  it('is optional for a dry run, which uses "dry-run"', () => {
    const options = resolveInventoryCollectOptions(sources({ flags: { 'dry-run': true } }));
    assert.equal(options.dryRun, true);
    assert.equal(options.clusterId, 'dry-run');
  });

  it('is still validated in a dry run', () => {
    assert.throws(() => resolveInventoryCollectOptions(sources({ flags: { 'dry-run': true }, clusterIdArgument: 'UPPER' })), /invalid cluster id "UPPER"/);
  });
});

describe('resolveInventoryCollectOptions: errors and warnings', () => {
  it('names the config file of a bad config value', () => {
    const err = optionError(() => resolveInventoryCollectOptions(sources({ clusterIdArgument: 'c', flags: { config: '/cfg' }, config: { pageSize: 'lots' } })));
    assert.equal(err.flag, '--page-size');
    assert.equal(err.message, 'invalid value "lots" for --page-size (from /cfg/pageSize): must be a whole number of at least 1');
  });

  it('names the environment variable of a bad env value', () => {
    const err = optionError(() => resolveInventoryCollectOptions(sources({ clusterIdArgument: 'c', env: { CROWSNEST_CHUNK_SIZE: '4 MB' } })));
    assert.equal(err.flag, '--chunk-size');
    assert.equal(err.message, 'invalid value "4 MB" for --chunk-size (from CROWSNEST_CHUNK_SIZE): must be a size in bytes like 65536, 512Ki or 4Mi');
  });

  it('names only the flag for a bad flag value', () => {
    const err = optionError(() => resolveInventoryCollectOptions(sources({ clusterIdArgument: 'c', flags: { format: 'yaml' } })));
    assert.equal(err.message, 'invalid value "yaml" for --format: must be one of ndjson, json');
  });

  const invalid: { name: string; flags: Record<string, string>; pattern: RegExp }[] = [
    { name: 'a non-http endpoint', flags: { endpoint: 'ftp://x' }, pattern: /--endpoint: must be an http:\/\/ or https:\/\/ URL$/ },
    { name: 'an endpoint that is no URL', flags: { endpoint: 'inventory' }, pattern: /--endpoint: must be an http:\/\/ or https:\/\/ URL$/ },
    { name: 'a subresource type', flags: { 'add-types': 'pods/log' }, pattern: /invalid resource type "pods\/log": subresources/ },
    { name: 'an invalid namespace', flags: { namespaces: 'default,Bad_NS' }, pattern: /--namespaces: must be a namespace name/ },
    { name: 'a zero qps', flags: { qps: '0' }, pattern: /--qps: must be a number greater than zero$/ },
    { name: 'a negative keep-last', flags: { 'keep-last': '-1' }, pattern: /--keep-last: must be a whole number \(0 or more\)$/ },
    { name: 'an unknown output', flags: { output: 'yaml' }, pattern: /--output: must be text or json$/ },
  ];
  for (const c of invalid) {
    it(`rejects ${c.name}`, () => {
      const err = optionError(() => resolveInventoryCollectOptions(sources({ clusterIdArgument: 'c', flags: c.flags })));
      assert.match(err.message, c.pattern);
    });
  }

  it('fails when an explicitly named config directory does not exist', () => {
    const err = optionError(() => resolveInventoryCollectOptions(sources({ clusterIdArgument: 'c', flags: { config: '/nope' } })));
    assert.equal(err.flag, '--config');
    assert.equal(err.message, 'config directory /nope does not exist');
  });

  it('fails when the config directory cannot be read', () => {
    const err = optionError(() => resolveInventoryCollectOptions(sources({
      clusterIdArgument: 'c',
      readConfigDir: () => {
        throw new Error('EACCES: permission denied');
      },
    })));
    assert.equal(err.flag, '--config');
    assert.equal(err.message, 'cannot read config directory /etc/config: EACCES: permission denied');
  });

  it('warns about unknown config keys instead of failing', () => {
    const options = resolveInventoryCollectOptions(sources({ clusterIdArgument: 'c', flags: { config: '/cfg' }, config: { addTypes: 'secrets', colour: 'blue' } }));
    assert.equal(options.warnings.length, 1);
    assert.match(options.warnings[0] ?? '', /^config directory \/cfg: unknown key "colour" ignored \(known: endpoint, loginEndpoint, customResourcesClusterRole, resources, addTypes, /);
    assert.deepEqual(options.selectors.add, ['secrets']);
  });

  it('reads k8s-collector\'s ConfigMap keys: watchNamespace, ignoreNamespaces, resources, per-type switches, PageSize (KB per request)', () => {
    const options = resolveInventoryCollectOptions(sources({
      clusterIdArgument: 'c', flags: { config: '/cfg' },
      config: {
        'collector.watchNamespace': 'shop',
        'collector.ignoreNamespaces': 'one\ntwo\n',
        'collector.resources.secrets': 'true',
        'collector.resources.replicationControllers': 'false',
        'collector.resources.argoApplications': 'T',
        'collector.resources.events': '',
        'collector.PageSize': '250',
      },
    }));
    assert.deepEqual(options.warnings, []);
    assert.deepEqual(options.namespaces, ['shop']);
    assert.deepEqual(options.ignoreNamespaces, ['one', 'two']);
    assert.deepEqual(options.selectors.add, ['secrets', 'applications.argoproj.io']);
    assert.deepEqual(options.selectors.remove, ['replicationcontrollers']);
    assert.equal(options.chunkBytes, 250 * 1024, 'the tool\'s PageSize is KB per request: our chunk size');
    assert.equal(options.pageSize, 500, 'not the list page size');
    const listed = resolveInventoryCollectOptions(sources({ clusterIdArgument: 'c', flags: { config: '/cfg' }, config: { 'collector.resources': '\nconfigmaps\npods\n' } }));
    assert.deepEqual(listed.selectors.base, ['configmaps', 'pods']);
  });

  it('our own keys win over k8s-collector\'s, and the tool\'s switches add to ours', () => {
    const options = resolveInventoryCollectOptions(sources({
      clusterIdArgument: 'c', flags: { config: '/cfg' },
      config: { chunkSize: '1Mi', 'collector.PageSize': '250', addTypes: 'events', 'collector.resources.secrets': 'true' },
    }));
    assert.equal(options.chunkBytes, 1024 * 1024);
    assert.deepEqual(options.selectors.add, ['events', 'secrets']);
  });

  it('says why collector.OverrideUniqueClusterId and collector.MaxGoRoutines have no meaning here, and refuses a per-type switch that is not a boolean, naming the file', () => {
    const options = resolveInventoryCollectOptions(sources({ clusterIdArgument: 'c', flags: { config: '/cfg' }, config: { 'collector.OverrideUniqueClusterId': 'true', 'collector.MaxGoRoutines': '8' } }));
    assert.equal(options.warnings.length, 2);
    assert.match(options.warnings[0] ?? '', /^config directory \/cfg: k8s-collector's key "collector.OverrideUniqueClusterId" has no meaning here: .*409/);
    assert.match(options.warnings[1] ?? '', /"collector.MaxGoRoutines" has no meaning here: .*one after the other/);
    assert.equal(options.concurrency, 4);
    assert.throws(
      () => resolveInventoryCollectOptions(sources({ clusterIdArgument: 'c', flags: { config: '/cfg' }, config: { 'collector.resources.pods': 'yes' } })),
      /invalid value "yes" in \/cfg\/collector\.resources\.pods: expected true or false/,
    );
    assert.throws(
      () => resolveInventoryCollectOptions(sources({ clusterIdArgument: 'c', flags: { config: '/cfg' }, config: { 'collector.PageSize': 'lots' } })),
      /invalid value "lots" in \/cfg\/collector\.PageSize: expected a whole number of KB/,
    );
  });

  it('warns when redaction is turned off, by flag or by config', () => {
    for (const init of [{ flags: { redact: false } }, { config: { redact: 'false' } }]) {
      const options = resolveInventoryCollectOptions(sources({ clusterIdArgument: 'c', ...init }));
      assert.equal(options.redaction.enabled, false);
      assert.deepEqual(options.warnings, ['redaction is off (--no-redact): Secret values and Helm release values will be written as they are']);
    }
  });
});

describe('rewriteSeedFlags', () => {
  const cases: { name: string; argv: string[]; expected: string[] }[] = [
    { name: '-external <path> becomes --kubeconfig <path>', argv: ['-external', '/k/config', 'c1'], expected: ['--kubeconfig', '/k/config', 'c1'] },
    { name: '-external=<path> keeps its value', argv: ['-external=/k/a=b'], expected: ['--kubeconfig=/k/a=b'] },
    { name: '-config, -debug and -dry-run', argv: ['-config', '/etc/cfg', '-debug', '-dry-run'], expected: ['--config', '/etc/cfg', '--debug=true', '--dry-run=true'] },
    {
      name: 'the documented command line: -debug takes no value, the next word is the cluster id (Go flag syntax)',
      argv: ['-external', '/k', '-config', '/etc/cfg', '-debug', 'mycluster'],
      expected: ['--kubeconfig', '/k', '--config', '/etc/cfg', '--debug=true', 'mycluster'],
    },
    { name: '-debug=false keeps its value', argv: ['-debug=false', 'c1'], expected: ['--debug=false', 'c1'] },
    { name: '-config=<dir>', argv: ['-config=/etc/cfg'], expected: ['--config=/etc/cfg'] },
    {
      name: 'our own flags and short flags are left alone',
      argv: ['--kubeconfig', '/k', '--config=/c', '-o', 'json', '--debug', '-v', 'external'],
      expected: ['--kubeconfig', '/k', '--config=/c', '-o', 'json', '--debug', '-v', 'external'],
    },
  ];
  for (const c of cases) {
    it(c.name, () => {
      assert.deepEqual(rewriteSeedFlags(c.argv), c.expected);
    });
  }

  it('does not modify its input', () => {
    const argv = ['-debug'];
    rewriteSeedFlags(argv);
    assert.deepEqual(argv, ['-debug']);
  });
});

describe('resolveInventoryCollectOptions: config directory on disk', () => {
  let root: string;
  before(async () => {
    root = await mkdtemp(join(tmpdir(), 'crowsnest-config-'));
  });
  after(async () => {
    await rm(root, { recursive: true, force: true });
  });

  it('reads the directory --config names', async () => {
    const dir = join(root, 'resolved');
    await mkdir(dir);
    for (const [key, value] of Object.entries({ pageSize: '250\n', removeTypes: '- pods\n', surprise: 'x' })) await writeFile(join(dir, key), value);
    const options = resolveInventoryCollectOptions({ flags: { config: dir }, env: {}, clusterIdArgument: 'c' });
    assert.equal(options.configDir, dir);
    assert.equal(options.pageSize, 250);
    assert.deepEqual(options.selectors.remove, ['pods']);
    assert.equal(options.warnings.length, 1);
    assert.match(options.warnings[0] ?? '', /unknown key "surprise"/);
  });
});
