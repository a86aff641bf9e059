import assert from 'node:assert/strict';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { delimiter, join } from 'node:path';
import { after, describe, test } from 'node:test';
import {
  describeKubeConfig,
  describeSource,
  KubeConfigNotFoundError,
  loadKubeConfig,
  resolveKubeConfig,
  type KubeConfigEnvironment,
} from './config.ts';

const root = mkdtempSync(join(tmpdir(), 'crowsnest-config-test-'));
after(() => rmSync(root, { recursive: true, force: true }));

let fixtureCount = 0;
/** A fresh directory per test, so fixtures never leak between tests. */
function freshDir(): string {
  const dir = join(root, String(++fixtureCount));
  mkdirSync(dir, { recursive: true });
  return dir;
}

interface KubeconfigSpec {
  readonly contexts: readonly { name: string; server: string; user?: string }[];
  readonly current?: string;
  readonly token?: string;
}

/** Writes a kubeconfig with one cluster and one user per context. */
function writeKubeconfig(path: string, spec: KubeconfigSpec): string {
  const lines = ['apiVersion: v1', 'kind: Config', 'clusters:'];
  for (const ctx of spec.contexts) lines.push(`- name: ${ctx.name}-cluster`, '  cluster:', `    server: ${ctx.server}`);
  lines.push('users:');
  for (const ctx of spec.contexts) lines.push(`- name: ${ctx.user ?? `${ctx.name}-user`}`, '  user:', `    token: ${spec.token ?? 'T0KEN'}`);
  lines.push('contexts:');
  for (const ctx of spec.contexts) {
    lines.push(`- name: ${ctx.name}`, '  context:', `    cluster: ${ctx.name}-cluster`, `    user: ${ctx.user ?? `${ctx.name}-user`}`);
  }
  if (spec.current !== undefined) lines.push(`current-context: ${spec.current}`);
  writeFileSync(path, `${lines.join('\n')}\n`);
  return path;
}

/** One context named `name` pointing at `server`, current. */
function singleContext(path: string, name: string, server: string): string {
  return writeKubeconfig(path, { contexts: [{ name, server }], current: name });
}

/** A machine with a home kubeconfig, a mounted service account and optionally KUBECONFIG. */
function machine(options: { home?: boolean; inCluster?: boolean; kubeconfigEnv?: string } = {}): KubeConfigEnvironment {
  const dir = freshDir();
  const homeDir = join(dir, 'home');
  const serviceAccountDir = join(dir, 'serviceaccount');
  mkdirSync(join(homeDir, '.kube'), { recursive: true });
  mkdirSync(serviceAccountDir, { recursive: true });
  if (options.home) singleContext(join(homeDir, '.kube', 'config'), 'home', 'https://home.example:6443');
  const env: Record<string, string> = {};
  if (options.inCluster) {
    writeFileSync(join(serviceAccountDir, 'token'), 'sa-token');
    env['KUBERNETES_SERVICE_HOST'] = '10.96.0.1';
    env['KUBERNETES_SERVICE_PORT'] = '443';
  }
  if (options.kubeconfigEnv !== undefined) env['KUBECONFIG'] = options.kubeconfigEnv;
  return { env, homeDir, serviceAccountDir };
}

describe('source precedence', () => {
  test('--kubeconfig wins over KUBECONFIG, in-cluster and ~/.kube/config', () => {
    const dir = freshDir();
    const flag = singleContext(join(dir, 'flag'), 'flag', 'https://flag.example');
    const fromEnv = singleContext(join(dir, 'env'), 'env', 'https://env.example');
    const resolved = resolveKubeConfig({ kubeconfig: flag }, machine({ home: true, inCluster: true, kubeconfigEnv: fromEnv }));
    assert.deepEqual(resolved.source, { kind: 'flag', path: flag });
    assert.equal(resolved.kubeConfig.getCurrentCluster()?.server, 'https://flag.example');
  });

  test('KUBECONFIG wins over in-cluster and ~/.kube/config', () => {
    const fromEnv = singleContext(join(freshDir(), 'env'), 'env', 'https://env.example');
    const resolved = resolveKubeConfig({}, machine({ home: true, inCluster: true, kubeconfigEnv: fromEnv }));
    assert.deepEqual(resolved.source, { kind: 'env', paths: [fromEnv] });
  });

  test('in-cluster config wins over ~/.kube/config and points at the service with the token file', () => {
    const environment = machine({ home: true, inCluster: true });
    const resolved = resolveKubeConfig({}, environment);
    assert.equal(resolved.source.kind, 'in-cluster');
    const kc = resolved.kubeConfig;
    assert.equal(kc.getCurrentCluster()?.server, 'https://10.96.0.1:443');
    assert.equal(kc.getCurrentCluster()?.caFile, join(environment.serviceAccountDir ?? '', 'ca.crt'));
    assert.equal(kc.getCurrentUser()?.tokenFile, join(environment.serviceAccountDir ?? '', 'token'));
  });

  test('in-cluster brackets an IPv6 service host', () => {
    const environment = machine({ inCluster: true });
    const env = { ...environment.env, KUBERNETES_SERVICE_HOST: 'fd00::1' };
    assert.equal(loadKubeConfig({}, { ...environment, env }).getCurrentCluster()?.server, 'https://[fd00::1]:443');
  });

  test('without the service account token, KUBERNETES_SERVICE_HOST alone does not mean in-cluster', () => {
    const environment = machine({ home: true });
    const env = { KUBERNETES_SERVICE_HOST: '10.96.0.1', KUBERNETES_SERVICE_PORT: '443' };
    const resolved = resolveKubeConfig({}, { ...environment, env });
    assert.equal(resolved.source.kind, 'home');
    assert.equal(resolved.kubeConfig.getCurrentCluster()?.server, 'https://home.example:6443');
  });

  test('~/.kube/config is the last resort', () => {
    const environment = machine({ home: true });
    const resolved = resolveKubeConfig({}, environment);
    assert.deepEqual(resolved.source, { kind: 'home', path: join(environment.homeDir ?? '', '.kube', 'config') });
  });

  test('with no source at all the error names everything tried', () => {
    const environment = machine();
    assert.throws(
      () => loadKubeConfig({}, environment),
      (err: unknown) =>
        err instanceof KubeConfigNotFoundError &&
        err.tried.length === 4 &&
        /--kubeconfig \(not given\), KUBECONFIG \(not set\), in-cluster config \(KUBERNETES_SERVICE_HOST not set\), .*\.kube\/config \(does not exist\)/.test(
          err.message,
        ),
    );
  });
});

describe('broken sources are errors, not a fall-through to the next source', () => {
  test('a missing --kubeconfig file', () => {
    assert.throws(
      () => loadKubeConfig({ kubeconfig: '/nonexistent/kubeconfig' }, machine({ home: true })),
      (err: unknown) => !(err instanceof KubeConfigNotFoundError) && /kubeconfig \/nonexistent\/kubeconfig \(from --kubeconfig\) does not exist/.test(String(err)),
    );
  });

  test('a KUBECONFIG naming no existing file', () => {
    assert.throws(() => loadKubeConfig({}, machine({ home: true, kubeconfigEnv: '/nope/a' })), /KUBECONFIG=\/nope\/a names no existing file/);
  });

  test('a file that is not a kubeconfig', () => {
    const path = join(freshDir(), 'garbage');
    writeFileSync(path, 'clusters: [unclosed\n');
    assert.throws(() => loadKubeConfig({ kubeconfig: path }, machine()), new RegExp(`cannot load kubeconfig ${path} \\(from --kubeconfig\\)`));
  });
});

describe('KUBECONFIG lists', () => {
  test('files are merged; the first file to set current-context wins, missing files are skipped', () => {
    const dir = freshDir();
    const first = writeKubeconfig(join(dir, 'first'), { contexts: [{ name: 'a', server: 'https://a.example' }] });
    const second = singleContext(join(dir, 'second'), 'b', 'https://b.example');
    const third = singleContext(join(dir, 'third'), 'c', 'https://c.example');
    const list = [first, join(dir, 'missing'), second, third].join(delimiter);
    const resolved = resolveKubeConfig({}, machine({ kubeconfigEnv: list }));
    assert.deepEqual(resolved.source, { kind: 'env', paths: [first, second, third] });
    assert.deepEqual(resolved.kubeConfig.getContexts().map((ctx) => ctx.name), ['a', 'b', 'c']);
    assert.equal(resolved.kubeConfig.getCurrentContext(), 'b');
  });

  test('for entries with the same name the first file wins', () => {
    const dir = freshDir();
    const first = singleContext(join(dir, 'first'), 'dev', 'https://first.example');
    const second = singleContext(join(dir, 'second'), 'dev', 'https://second.example');
    const kc = loadKubeConfig({}, machine({ kubeconfigEnv: [first, second].join(delimiter) }));
    assert.equal(kc.getContexts().length, 1);
    assert.equal(kc.getCurrentCluster()?.server, 'https://first.example');
  });
});

describe('contexts', () => {
  const twoContexts = (path: string) =>
    writeKubeconfig(path, {
      contexts: [
        { name: 'dev', server: 'https://dev.example' },
        { name: 'prod', server: 'https://prod.example' },
      ],
      current: 'dev',
    });

  test('--context selects a context other than the current one', () => {
    const kc = loadKubeConfig({ kubeconfig: twoContexts(join(freshDir(), 'kc')), context: 'prod' }, machine());
    assert.equal(kc.getCurrentContext(), 'prod');
    assert.equal(kc.getCurrentCluster()?.server, 'https://prod.example');
  });

  test('an unknown --context is an error listing the available ones', () => {
    assert.throws(
      () => loadKubeConfig({ kubeconfig: twoContexts(join(freshDir(), 'kc')), context: 'staging' }, machine()),
      /context "staging" not found in kubeconfig .* \(from --kubeconfig\); available: dev, prod/,
    );
  });

  test('a file without current-context needs --context', () => {
    const path = writeKubeconfig(join(freshDir(), 'kc'), { contexts: [{ name: 'dev', server: 'https://dev.example' }] });
    assert.throws(() => loadKubeConfig({ kubeconfig: path }, machine()), /sets no current-context; pass --context \(available: dev\)/);
    assert.equal(loadKubeConfig({ kubeconfig: path, context: 'dev' }, machine()).getCurrentContext(), 'dev');
  });

  test('a current-context that does not exist is an error', () => {
    const path = writeKubeconfig(join(freshDir(), 'kc'), { contexts: [{ name: 'dev', server: 'https://dev.example' }], current: 'gone' });
    assert.throws(() => loadKubeConfig({ kubeconfig: path }, machine()), /current-context "gone" .* does not exist; available: dev/);
  });
});

describe('describing a configuration for logs', () => {
  test('names server, context and user, never the token', () => {
    const path = writeKubeconfig(join(freshDir(), 'kc'), {
      contexts: [{ name: 'dev', server: 'https://dev.example:6443', user: 'alice' }],
      current: 'dev',
      token: 'sekret-token-value',
    });
    const description = describeKubeConfig(loadKubeConfig({ kubeconfig: path }, machine()));
    assert.deepEqual(description, { server: 'https://dev.example:6443', context: 'dev', user: 'alice' });
    assert.doesNotMatch(JSON.stringify(description), /sekret/);
  });

  test('credentials embedded in the server URL are removed', () => {
    const path = singleContext(join(freshDir(), 'kc'), 'dev', 'https://bob:hunter2@dev.example:6443/prefix');
    assert.equal(describeKubeConfig(loadKubeConfig({ kubeconfig: path }, machine())).server, 'https://dev.example:6443/prefix');
  });

  test('sources read as one line', () => {
    assert.equal(describeSource({ kind: 'home', path: '/home/me/.kube/config' }), 'kubeconfig /home/me/.kube/config');
    assert.equal(describeSource({ kind: 'in-cluster', serviceAccountDir: '/sa' }), 'in-cluster config (service account in /sa)');
  });
});
