import assert from 'node:assert/strict';
import { chmodSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, test } from 'node:test';
import { FakeClock } from '../clock.ts';
import { loadKubeConfig } from './config.ts';
import { ClientConfig, type ClientConfigOptions } from './kubeconfig.ts';
import { mergeKubeconfigs, parseKubeconfig, readKubeconfigFile } from './kubeconfig-file.ts';

const root = mkdtempSync(join(tmpdir(), 'crowsnest-kubeconfig-test-'));
after(() => rmSync(root, { recursive: true, force: true }));

let dirCount = 0;
function freshDir(): string {
  const dir = join(root, String(++dirCount));
  mkdirSync(dir, { recursive: true });
  return dir;
}

const CA_PEM = '-----BEGIN CERTIFICATE-----\nca\n-----END CERTIFICATE-----\n';
const CERT_PEM = '-----BEGIN CERTIFICATE-----\nclient\n-----END CERTIFICATE-----\n';
const KEY_PEM = '-----BEGIN PRIVATE KEY-----\nkey\n-----END PRIVATE KEY-----\n';
const b64 = (text: string): string => Buffer.from(text).toString('base64');

/** A kubeconfig with one context `main` → cluster `c` → user `u`, with the given stanzas. */
function kubeconfig(cluster: Record<string, unknown>, user: Record<string, unknown>, context: Record<string, unknown> = {}): string {
  return JSON.stringify({
    apiVersion: 'v1',
    kind: 'Config',
    clusters: [{ name: 'c', cluster: { server: 'https://api.example:6443', ...cluster } }],
    users: [{ name: 'u', user }],
    contexts: [{ name: 'main', context: { cluster: 'c', user: 'u', ...context } }],
    'current-context': 'main',
  });
}

function write(dir: string, name: string, text: string): string {
  const path = join(dir, name);
  writeFileSync(path, text);
  return path;
}

/** Loads `text` as a kubeconfig file in `dir` and returns the current connection. */
function configFrom(dir: string, text: string, options: ClientConfigOptions = {}): ClientConfig {
  return new ClientConfig(readKubeconfigFile(write(dir, 'kubeconfig', text)), { stderr: () => {}, stdinIsTerminal: false, ...options });
}

describe('kubeconfig files', () => {
  test('inline certificate data is decoded into the TLS material', async () => {
    const kc = configFrom(
      freshDir(),
      kubeconfig(
        { server: 'https://api.example:6443/', 'certificate-authority-data': b64(CA_PEM) },
        { 'client-certificate-data': b64(CERT_PEM), 'client-key-data': b64(KEY_PEM) },
      ),
    );
    const connection = await kc.connection();
    assert.equal(connection.server, 'https://api.example:6443');
    assert.equal(String(connection.tls.ca), CA_PEM);
    assert.equal(String(connection.tls.cert), CERT_PEM);
    assert.equal(String(connection.tls.key), KEY_PEM);
    assert.equal(connection.tls.rejectUnauthorized, true);
    assert.deepEqual(connection.headers, {});
  });

  test('relative file paths are read relative to the kubeconfig file, not the working directory', async () => {
    const dir = freshDir();
    mkdirSync(join(dir, 'pki'));
    write(dir, 'pki/ca.pem', CA_PEM);
    write(dir, 'pki/client.pem', CERT_PEM);
    write(dir, 'pki/client.key', KEY_PEM);
    write(dir, 'token', 'file-token\n');
    const text = [
      'apiVersion: v1',
      'clusters:',
      '- name: c',
      '  cluster:',
      '    server: https://api.example:6443',
      '    certificate-authority: pki/ca.pem',
      'users:',
      '- name: u',
      '  user:',
      '    client-certificate: pki/client.pem',
      '    client-key: ./pki/client.key',
      '    tokenFile: token',
      'contexts:',
      '- name: main',
      '  context: {cluster: c, user: u}',
      'current-context: main',
    ].join('\n');
    const kc = configFrom(dir, text);
    assert.equal(kc.getCurrentCluster()?.caFile, join(dir, 'pki', 'ca.pem'));
    const connection = await kc.connection();
    assert.equal(String(connection.tls.ca), CA_PEM);
    assert.equal(String(connection.tls.cert), CERT_PEM);
    assert.equal(String(connection.tls.key), KEY_PEM);
    assert.equal(connection.headers['authorization'], 'Bearer file-token');
  });

  test('inline data wins over a file path for the same item', async () => {
    const kc = configFrom(freshDir(), kubeconfig({ 'certificate-authority-data': b64(CA_PEM), 'certificate-authority': '/nonexistent/ca.pem' }, {}));
    assert.equal(String((await kc.connection()).tls.ca), CA_PEM);
  });

  test('a missing certificate file is an error naming the file and the entry', async () => {
    const kc = configFrom(freshDir(), kubeconfig({ 'certificate-authority': '/nonexistent/ca.pem' }, {}));
    await assert.rejects(kc.connection(), /cannot read certificate-authority of cluster "c" from \/nonexistent\/ca\.pem/);
  });

  test('unquoted values that look like numbers keep their exact text', async () => {
    const text = 'clusters: [{name: c, cluster: {server: "https://a"}}]\nusers: [{name: u, user: {token: 0123}}]\ncontexts: [{name: m, context: {cluster: c, user: u}}]\ncurrent-context: m\n';
    assert.equal((await configFrom(freshDir(), text).connection()).headers['authorization'], 'Bearer 0123');
  });

  test('malformed YAML is an error naming the file', () => {
    const path = write(freshDir(), 'broken', 'clusters: [unclosed\n');
    assert.throws(() => readKubeconfigFile(path), (err: unknown) => err instanceof Error && err.message.startsWith(`${path} is not valid YAML:`));
  });

  test('a list that is not a list is an error naming the file and field', () => {
    assert.throws(() => parseKubeconfig('clusters: {name: c}\n', '/x/kc'), /^Error: \/x\/kc: clusters must be a list$/);
  });

  test('an empty file is an empty configuration', () => {
    assert.deepEqual(parseKubeconfig('# nothing yet\n', '/x/kc'), { clusters: [], users: [], contexts: [], currentContext: '' });
  });
});

describe('merging files', () => {
  test('the first file defining a name wins, and the first current-context wins', () => {
    const first = parseKubeconfig(
      kubeconfig({ server: 'https://first.example' }, { token: 'first' }).replace('"current-context":"main"', '"current-context":""'),
      '/a/kc',
    );
    const second = parseKubeconfig(
      JSON.stringify({
        clusters: [{ name: 'c', cluster: { server: 'https://second.example' } }, { name: 'd', cluster: { server: 'https://d.example' } }],
        contexts: [{ name: 'other', context: { cluster: 'd' } }],
        'current-context': 'other',
      }),
      '/b/kc',
    );
    const third = parseKubeconfig(JSON.stringify({ 'current-context': 'main' }), '/c/kc');
    const merged = mergeKubeconfigs([first, second, third]);
    assert.deepEqual(merged.clusters.map((c) => [c.name, c.server]), [['c', 'https://first.example'], ['d', 'https://d.example']]);
    assert.deepEqual(merged.contexts.map((c) => c.name), ['main', 'other']);
    assert.equal(merged.currentContext, 'other');
  });
});

describe('contexts', () => {
  test('--context selects another context, its cluster, user and namespace', async () => {
    const dir = freshDir();
    const path = write(
      dir,
      'kc',
      JSON.stringify({
        clusters: [{ name: 'dev', cluster: { server: 'https://dev.example' } }, { name: 'prod', cluster: { server: 'https://prod.example' } }],
        users: [{ name: 'dev', user: { token: 'dev-token' } }, { name: 'prod', user: { token: 'prod-token' } }],
        contexts: [
          { name: 'dev', context: { cluster: 'dev', user: 'dev' } },
          { name: 'prod', context: { cluster: 'prod', user: 'prod', namespace: 'payments' } },
        ],
        'current-context': 'dev',
      }),
    );
    const kc = loadKubeConfig({ kubeconfig: path, context: 'prod' }, { env: {} });
    const connection = await kc.connection();
    assert.equal(connection.server, 'https://prod.example');
    assert.equal(connection.headers['authorization'], 'Bearer prod-token');
    assert.equal(kc.getCurrentNamespace(), 'payments');
  });

  test('a context without a user sends no credentials', async () => {
    const text = JSON.stringify({ clusters: [{ name: 'c', cluster: { server: 'https://a' } }], contexts: [{ name: 'm', context: { cluster: 'c' } }], 'current-context': 'm' });
    assert.deepEqual((await configFrom(freshDir(), text).connection()).headers, {});
  });
});

describe('credentials', () => {
  test('a token file is read again for every request, so a rotated token is picked up', async () => {
    const dir = freshDir();
    const tokenFile = write(dir, 'token', 'first');
    const kc = configFrom(dir, kubeconfig({}, { tokenFile, token: 'static' }));
    assert.equal((await kc.connection()).headers['authorization'], 'Bearer first');
    writeFileSync(tokenFile, 'second\n');
    assert.equal((await kc.connection()).headers['authorization'], 'Bearer second');
  });

  test('an unreadable token file falls back to the static token, and is an error without one', async () => {
    const dir = freshDir();
    const withToken = configFrom(dir, kubeconfig({}, { tokenFile: '/nonexistent/token', token: 'static' }));
    assert.equal((await withToken.connection()).headers['authorization'], 'Bearer static');
    const without = configFrom(dir, kubeconfig({}, { tokenFile: '/nonexistent/token' }));
    await assert.rejects(without.connection(), /cannot read tokenFile \/nonexistent\/token of user "u"/);
  });

  test('username and password are sent as basic auth', async () => {
    const kc = configFrom(freshDir(), kubeconfig({}, { username: 'alice', password: 's3cret:x' }));
    assert.equal((await kc.connection()).headers['authorization'], `Basic ${b64('alice:s3cret:x')}`);
  });

  test('insecure-skip-tls-verify turns off certificate verification', async () => {
    const kc = configFrom(freshDir(), kubeconfig({ 'insecure-skip-tls-verify': true }, {}));
    assert.equal((await kc.connection()).tls.rejectUnauthorized, false);
  });

  test('tls-server-name becomes the TLS server name', async () => {
    const kc = configFrom(freshDir(), kubeconfig({ 'tls-server-name': 'kubernetes.default.svc' }, {}));
    assert.equal((await kc.connection()).tls.servername, 'kubernetes.default.svc');
  });

  test('auth-provider users are refused with a pointer to exec plugins', async () => {
    const dir = freshDir();
    const text = kubeconfig({}, { 'auth-provider': { name: 'gcp', config: { 'access-token': 'x' } } });
    assert.throws(
      () => loadKubeConfig({ kubeconfig: write(dir, 'kc', text) }, { env: {} }),
      /user "u" uses auth-provider "gcp", which crowsnest does not support .*use an exec credential plugin instead .*\(in kubeconfig .*\/kc \(from --kubeconfig\)\)/,
    );
    await assert.rejects(configFrom(dir, text).connection(), /auth-provider "gcp"/);
  });

  test('proxy-url is refused rather than silently bypassed', () => {
    const path = write(freshDir(), 'kc', kubeconfig({ 'proxy-url': 'http://proxy:3128' }, {}));
    assert.throws(() => loadKubeConfig({ kubeconfig: path }, { env: {} }), /cluster "c" sets proxy-url, which crowsnest does not support/);
  });

  test('impersonation is refused rather than silently ignored', () => {
    const path = write(freshDir(), 'kc', kubeconfig({}, { token: 't', as: 'system:admin' }));
    assert.throws(() => loadKubeConfig({ kubeconfig: path }, { env: {} }), /asks for impersonation/);
  });
});

describe('exec credential plugins', () => {
  /**
   * Writes `plugin.sh` into `dir`: it counts its runs in `runs`, saves its arguments and
   * KUBERNETES_EXEC_INFO, and prints an ExecCredential whose token is `token-<run>` (status fields
   * from $STATUS_EXTRA, a JSON fragment).
   */
  function writePlugin(dir: string, body?: string): void {
    const script = body ?? [
      '#!/bin/sh',
      `cd '${dir}'`,
      'n=$(cat runs 2>/dev/null || echo 0); n=$((n + 1)); echo "$n" > runs',
      'echo "$@" > args',
      'printf "%s" "$KUBERNETES_EXEC_INFO" > exec-info',
      'printf \'{"apiVersion":"client.authentication.k8s.io/v1","kind":"ExecCredential","status":{"token":"token-%s"%s}}\' "$n" "$STATUS_EXTRA"',
    ].join('\n');
    write(dir, 'plugin.sh', `${script}\n`);
    chmodSync(join(dir, 'plugin.sh'), 0o755);
  }

  function execUser(extra: Record<string, unknown> = {}, statusExtra = ''): Record<string, unknown> {
    return {
      exec: {
        apiVersion: 'client.authentication.k8s.io/v1',
        command: './plugin.sh',
        args: ['get-token', '--cluster', 'prod'],
        env: [{ name: 'STATUS_EXTRA', value: statusExtra }],
        interactiveMode: 'Never',
        ...extra,
      },
    };
  }

  const T0 = Date.parse('2030-01-01T00:00:00Z');
  const runs = (dir: string): number => Number(readFileSync(join(dir, 'runs'), 'utf8'));

  test('runs the command with its args and env, and sends the token it prints', async () => {
    const dir = freshDir();
    writePlugin(dir);
    const kc = configFrom(dir, kubeconfig({}, execUser()));
    assert.equal((await kc.connection()).headers['authorization'], 'Bearer token-1');
    assert.equal(readFileSync(join(dir, 'args'), 'utf8').trim(), 'get-token --cluster prod');
    assert.deepEqual(JSON.parse(readFileSync(join(dir, 'exec-info'), 'utf8')), {
      apiVersion: 'client.authentication.k8s.io/v1',
      kind: 'ExecCredential',
      spec: { interactive: false },
    });
  });

  test('reuses the credential until its expirationTimestamp, then runs the plugin again', async () => {
    const dir = freshDir();
    writePlugin(dir);
    const clock = new FakeClock(T0);
    const kc = configFrom(dir, kubeconfig({}, execUser({}, ',"expirationTimestamp":"2030-01-01T00:01:00Z"')), { clock });
    const [a, b] = await Promise.all([kc.connection(), kc.connection()]);
    assert.equal(a.headers['authorization'], 'Bearer token-1');
    assert.equal(b.headers['authorization'], 'Bearer token-1');
    clock.advance(59_000);
    assert.equal((await kc.connection()).headers['authorization'], 'Bearer token-1');
    assert.equal(runs(dir), 1, 'concurrent and later requests before expiry share one run');
    clock.advance(1_000);
    assert.equal((await kc.connection()).headers['authorization'], 'Bearer token-2');
    assert.equal(runs(dir), 2);
  });

  test('a credential without expiry is reused until the API server rejects it', async () => {
    const dir = freshDir();
    writePlugin(dir);
    const kc = configFrom(dir, kubeconfig({}, execUser()));
    await kc.connection();
    assert.equal((await kc.connection()).headers['authorization'], 'Bearer token-1');
    kc.credentialsRejected();
    assert.equal((await kc.connection()).headers['authorization'], 'Bearer token-2');
  });

  test('a client certificate from the plugin replaces the kubeconfig one', async () => {
    const dir = freshDir();
    writePlugin(dir);
    const extra = `,"clientCertificateData":${JSON.stringify(CERT_PEM)},"clientKeyData":${JSON.stringify(KEY_PEM)}`;
    const kc = configFrom(dir, kubeconfig({}, { ...execUser({}, extra), 'client-certificate-data': b64('old') }));
    const connection = await kc.connection();
    assert.equal(connection.tls.cert, CERT_PEM);
    assert.equal(connection.tls.key, KEY_PEM);
  });

  test('provideClusterInfo passes the cluster in KUBERNETES_EXEC_INFO', async () => {
    const dir = freshDir();
    writePlugin(dir);
    const cluster = {
      'certificate-authority-data': b64(CA_PEM),
      'tls-server-name': 'api.internal',
      extensions: [{ name: 'client.authentication.k8s.io/exec', extension: { audience: 'prod' } }],
    };
    const kc = configFrom(dir, kubeconfig(cluster, execUser({ provideClusterInfo: true })));
    await kc.connection();
    assert.deepEqual(JSON.parse(readFileSync(join(dir, 'exec-info'), 'utf8')).spec, {
      interactive: false,
      cluster: { server: 'https://api.example:6443', 'tls-server-name': 'api.internal', 'certificate-authority-data': b64(CA_PEM), config: { audience: 'prod' } },
    });
  });

  test('a failing plugin is an error naming the plugin and user, with what it printed on stderr', async () => {
    const dir = freshDir();
    writePlugin(dir, '#!/bin/sh\necho "token expired; run: login --sso" >&2\nexit 3');
    const forwarded: string[] = [];
    const kc = configFrom(dir, kubeconfig({}, execUser()), { stderr: (chunk) => forwarded.push(String(chunk)) });
    await assert.rejects(kc.connection(), /exec plugin ".*\/plugin\.sh" of user "u" exited with 3: token expired; run: login --sso/);
    assert.deepEqual(forwarded, ['token expired; run: login --sso\n']);
  });

  test('a plugin printing something other than an ExecCredential is an error', async () => {
    const dir = freshDir();
    writePlugin(dir, '#!/bin/sh\necho \'{"apiVersion":"client.authentication.k8s.io/v1beta1","kind":"ExecCredential","status":{"token":"t"}}\'');
    await assert.rejects(configFrom(dir, kubeconfig({}, execUser())).connection(), /returned apiVersion "client.authentication.k8s.io\/v1beta1", but the kubeconfig asks for "client.authentication.k8s.io\/v1"/);
  });

  test('a missing command is an error carrying the install hint', async () => {
    const kc = configFrom(freshDir(), kubeconfig({}, execUser({ command: 'crowsnest-no-such-plugin', installHint: 'Install it with: brew install x' })));
    await assert.rejects(kc.connection(), /command "crowsnest-no-such-plugin" not found\nInstall it with: brew install x/);
  });

  test('a plugin that needs a terminal is refused when there is none', async () => {
    const dir = freshDir();
    writePlugin(dir);
    await assert.rejects(configFrom(dir, kubeconfig({}, execUser({ interactiveMode: 'Always' }))).connection(), /needs an interactive terminal/);
  });
});

describe('in-cluster configuration', () => {
  test('uses the service account token (re-read per request), CA and namespace', async () => {
    const dir = freshDir();
    const sa = join(dir, 'serviceaccount');
    mkdirSync(sa);
    write(sa, 'token', 'sa-token-1');
    write(sa, 'ca.crt', CA_PEM);
    write(sa, 'namespace', 'crowsnest-system');
    const env = { KUBERNETES_SERVICE_HOST: '10.96.0.1', KUBERNETES_SERVICE_PORT: '443' };
    const kc = loadKubeConfig({}, { env, homeDir: dir, serviceAccountDir: sa });
    const connection = await kc.connection();
    assert.equal(connection.server, 'https://10.96.0.1:443');
    assert.equal(connection.headers['authorization'], 'Bearer sa-token-1');
    assert.equal(String(connection.tls.ca), CA_PEM);
    assert.equal(connection.tls.rejectUnauthorized, true);
    assert.equal(kc.getCurrentNamespace(), 'crowsnest-system');
    write(sa, 'token', 'sa-token-2');
    assert.equal((await kc.connection()).headers['authorization'], 'Bearer sa-token-2');
  });
});
