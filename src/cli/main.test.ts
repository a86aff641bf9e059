import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { FakeClock } from '../kube/clock.ts';
import { loadKubeConfig } from '../kube/client/config.ts';
import { version } from '../version.ts';
import { EXIT_OK, EXIT_USAGE, main } from './main.ts';
import { fetchServerVersion } from './version.ts';

interface Run {
  readonly code: number;
  readonly stdout: string;
  readonly stderr: string;
}

/** Runs the CLI in-process with `env` as its whole environment. */
async function run(argv: readonly string[], env: Record<string, string> = {}): Promise<Run> {
  let stdout = '';
  let stderr = '';
  const code = await main(argv, {
    stdout: (text) => { stdout += text; },
    stderr: (text) => { stderr += text; },
    env,
    stderrIsTTY: false,
  });
  return { code, stdout, stderr };
}

describe('help', () => {
  test('--help explains crowsnest, its capabilities and examples, and exits 0', async () => {
    const { code, stdout } = await run(['--help']);
    assert.equal(code, EXIT_OK);
    assert.match(stdout, /Kubernetes cluster/);
    for (const capability of ['logaccess', 'inventory', 'ports', 'prober', 'guard']) {
      assert.match(stdout, new RegExp(`^  ${capability} +ready`, 'm'));
    }
    assert.doesNotMatch(stdout, / coming /);
    assert.match(stdout, /Examples:\n/);
    assert.match(stdout, /--log-level <level>/);
  });

  test('operator --help lists every flag with its default and env variable, and the global options', async () => {
    const { code, stdout } = await run(['operator', '--help']);
    assert.equal(code, EXIT_OK);
    assert.match(stdout, /--lease-duration <duration>/);
    assert.match(stdout, /CROWSNEST_LEASE_DURATION/);
    assert.match(stdout, /--no-leader-elect/);
    assert.match(stdout, /Global Options:/);
  });

  test("help <command> and <command> --help show that command's own help", async () => {
    for (const argv of [['help', 'ports'], ['ports', '--help']]) {
      const { code, stdout } = await run(argv);
      assert.equal(code, EXIT_OK, argv.join(' '));
      assert.match(stdout, /^Usage: crowsnest ports/);
      assert.match(stdout, /^ {2}scan \[options\] +list this host's listening sockets/m);
      assert.match(stdout, /^ {2}collect \[options\] +scan every node/m);
    }
  });

  test('the root help lists every command with what it does', async () => {
    const { stdout } = await run(['--help']);
    const commands = stdout.slice(stdout.indexOf('Commands:'), stdout.indexOf('Capabilities:'));
    for (const [name, summary] of [['inventory', 'snapshot the cluster'], ['operator', 'run the Crowsnest controllers'], ['ports', 'the sockets hosts listen on'], ['version', 'print the crowsnest and Node.js versions']]) {
      assert.match(commands, new RegExp(`^  ${name} +${summary}`, 'm'));
    }
  });

  test('--version prints the package version', async () => {
    const { code, stdout } = await run(['--version']);
    assert.equal(code, EXIT_OK);
    assert.equal(stdout, `${version}\n`);
  });
});

describe('usage errors exit 2 with a one-line message and no stack', () => {
  const cases: readonly [string, readonly string[], Record<string, string>, RegExp][] = [
    ['an unknown command', ['inventroy'], {}, /error: unknown command 'inventroy'/],
    ['an unknown flag', ['version', '--bogus'], {}, /error: unknown option '--bogus'/],
    ['a missing flag value', ['operator', '--workers'], {}, /error: option '--workers <count>' argument missing/],
    ['a positional argument to operator', ['operator', 'now'], {}, /error: too many arguments/],
    ['a bad operator value', ['operator', '--workers', '0'], {}, /^error: invalid value "0" for --workers: must be a whole number of at least 1\n$/],
    ['a bad operator env value', ['operator'], { CROWSNEST_LEASE_DURATION: '15' }, /^error: .*--lease-duration \(from CROWSNEST_LEASE_DURATION\): missing unit/],
    ['a bad global flag after the command', ['version', '--log-level', 'verbose'], {}, /^error: invalid value "verbose" for --log-level/],
    ['a bad version output format', ['version', '--output', 'yaml'], {}, /error: option '-o, --output <format>' argument 'yaml' is invalid/],
    ['an operator with no controller to run', ['operator', '--controllers=-logaccess'], {}, /^error: invalid value "-logaccess" for --controllers: selects no controller, so the operator would have nothing to run \(known controllers: logaccess, prober, guard; '\*' runs them all\)\n$/],
    ['an operator with an empty controller list', ['operator'], { CROWSNEST_CONTROLLERS: ',' }, /^error: invalid value "," for --controllers \(from CROWSNEST_CONTROLLERS\): selects no controller/],
    ['escape sequences in an argument, echoed escaped', ['ports', 'scan', '--net-pid', '1\u001b[2J\n'], {}, /^error: invalid value "1\\e\[2J\\n" for --net-pid: must be a process id/],
    ['escape sequences in an unknown option, echoed escaped', ['version', '--x\u001b[31m'], {}, /^error: unknown option '--x\\e\[31m'/],
  ];
  for (const [what, argv, env, message] of cases) {
    test(what, async () => {
      const { code, stderr } = await run(argv, env);
      assert.equal(code, EXIT_USAGE);
      assert.match(stderr, message);
      assert.doesNotMatch(stderr, /\n\s+at /, 'no stack trace');
      // biome-ignore lint/suspicious/noControlCharactersInRegex: the test looks for raw control characters
      assert.doesNotMatch(stderr, /[\u0000-\u0009\u000b-\u001f]/, 'no raw control characters');
    });
  }

  test('binary content of a config file is echoed escaped, on one line', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'crowsnest-main-config-'));
    try {
      writeFileSync(join(dir, 'pageSize'), '12\u001b]0;pwned\u0007\n\u0000\u00ff');
      const { code, stderr } = await run(['inventory', 'collect', 'c1', '--config', dir]);
      assert.equal(code, EXIT_USAGE);
      assert.equal(stderr.split('\n').length, 2, stderr);
      assert.match(stderr, /^error: invalid value "12\\e\]0;pwned\\x07\\n\\x00ÿ" for --page-size \(from .*pageSize\): must be a whole number/);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  test('no command at all shows the help on stderr', async () => {
    const { code, stderr } = await run([]);
    assert.equal(code, EXIT_USAGE);
    assert.match(stderr, /Usage: crowsnest/);
  });
});

describe('version', () => {
  let apiServer: Server;
  let dir: string;
  let reachable: string;
  let unreachable: string;

  before(async () => {
    apiServer = createServer((request, response) => {
      if (request.url?.startsWith('/version')) {
        response.writeHead(200, { 'content-type': 'application/json' });
        response.end(JSON.stringify({ major: '1', minor: '34', gitVersion: 'v1.34.0', platform: 'linux/amd64' }));
        return;
      }
      response.writeHead(404).end();
    });
    await new Promise<void>((resolve) => apiServer.listen(0, '127.0.0.1', resolve));
    const { port } = apiServer.address() as AddressInfo;

    // A port that was free a moment ago: connecting to it is refused.
    const closed = createServer();
    await new Promise<void>((resolve) => closed.listen(0, '127.0.0.1', resolve));
    const closedPort = (closed.address() as AddressInfo).port;
    await new Promise<void>((resolve) => closed.close(() => resolve()));

    dir = mkdtempSync(join(tmpdir(), 'crowsnest-main-test-'));
    reachable = writeKubeconfig(join(dir, 'reachable'), `http://127.0.0.1:${port}`);
    unreachable = writeKubeconfig(join(dir, 'unreachable'), `http://127.0.0.1:${closedPort}`);
  });

  after(async () => {
    await new Promise<void>((resolve) => apiServer.close(() => resolve()));
    rmSync(dir, { recursive: true, force: true });
  });

  function writeKubeconfig(path: string, server: string): string {
    writeFileSync(
      path,
      [
        'apiVersion: v1',
        'kind: Config',
        // client-node refuses plain http unless TLS verification is explicitly off.
        `clusters: [{name: test, cluster: {server: "${server}", insecure-skip-tls-verify: true}}]`,
        'users: [{name: test, user: {token: abc}}]',
        'contexts: [{name: test, context: {cluster: test, user: test}}]',
        'current-context: test',
        '',
      ].join('\n'),
    );
    return path;
  }

  test('prints crowsnest, Node.js and the server version from the kubeconfig', async () => {
    const { code, stdout } = await run(['version', '--kubeconfig', reachable], { CROWSNEST_GIT_COMMIT: 'abc1234' });
    assert.equal(code, EXIT_OK);
    assert.equal(stdout, `crowsnest ${version} (commit abc1234)\nnode ${process.version}\nserver: v1.34.0\n`);
  });

  test('finds the kubeconfig through KUBECONFIG', async () => {
    const { stdout } = await run(['version'], { KUBECONFIG: reachable });
    assert.match(stdout, /^server: v1\.34\.0$/m);
  });

  test('an unreachable server is reported and still exits 0', async () => {
    const { code, stdout } = await run(['version', '--kubeconfig', unreachable]);
    assert.equal(code, EXIT_OK);
    assert.match(stdout, /^server: unavailable \(API server 127\.0\.0\.1:\d+: connection refused \(ECONNREFUSED\): nothing listens there, or the server is down\)$/m);
  });

  test('a broken kubeconfig is reported as the reason and still exits 0', async () => {
    const { code, stdout } = await run(['version', '--kubeconfig', reachable, '--context', 'nope']);
    assert.equal(code, EXIT_OK);
    assert.match(stdout, /^server: unavailable \(context "nope" not found in kubeconfig .*; available: test\)$/m);
  });

  test('--output json reports client and server versions as JSON', async () => {
    const { code, stdout } = await run(['version', '-o', 'json', '--kubeconfig', reachable]);
    assert.equal(code, EXIT_OK);
    const report = JSON.parse(stdout);
    assert.equal(report.clientVersion.version, version);
    assert.equal(report.clientVersion.nodeVersion, process.version);
    assert.equal(report.serverVersion.gitVersion, 'v1.34.0');
  });

  test('a server that accepts but never answers is given up on after the timeout', async () => {
    let requestArrived: () => void = () => {};
    const arrived = new Promise<void>((resolve) => {
      requestArrived = resolve;
    });
    const silent = createServer(() => requestArrived());
    await new Promise<void>((resolve) => silent.listen(0, '127.0.0.1', resolve));
    try {
      const path = writeKubeconfig(join(dir, 'silent'), `http://127.0.0.1:${(silent.address() as AddressInfo).port}`);
      const clock = new FakeClock();
      const pending = fetchServerVersion(loadKubeConfig({ kubeconfig: path }), { timeoutMs: 5_000, clock });
      await arrived;
      clock.advance(5_000);
      await assert.rejects(pending, { name: 'KubeConnectionError', message: `API server 127.0.0.1:${(silent.address() as AddressInfo).port}: no answer within 5s (the server or the network path to it is stuck)` });
    } finally {
      silent.closeAllConnections();
      await new Promise<void>((resolve) => silent.close(() => resolve()));
    }
  });

  test('--output json carries the reason when the server is unavailable', async () => {
    const { stdout } = await run(['version', '-o', 'json', '--kubeconfig', unreachable]);
    assert.match(JSON.parse(stdout).serverError, /ECONNREFUSED/);
  });
});

describe('inventory diff says what it would otherwise pass over', () => {
  const line = (name: string, uid: string): string => `${JSON.stringify({ apiVersion: 'v1', kind: 'ConfigMap', metadata: { namespace: 'a', name, uid } })}\n`;

  test('snapshots of two different clusters: a warning naming both, and the diff as usual', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'crowsnest-diff-'));
    try {
      const prod = join(dir, 'inventory-prod-eu-20261123T140000.000Z-aaaaaaaa.ndjson');
      const staging = join(dir, 'inventory-staging-20261123T141500Z.ndjson');
      writeFileSync(prod, line('x', '1'));
      writeFileSync(staging, line('x', '1'));
      const { code, stdout, stderr } = await run(['inventory', 'diff', prod, staging]);
      assert.equal(code, EXIT_OK, stderr);
      assert.match(stderr, /^warning: the snapshots are of different clusters: prod-eu \(inventory-prod-eu-.*\) and staging \(inventory-staging-.*\)$/m);
      assert.match(stdout, /No differences\./);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  test('an empty snapshot: a warning that everything shows as added (or removed)', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'crowsnest-diff-'));
    try {
      const empty = join(dir, 'inventory-prod-20261123T140000.000Z-aaaaaaaa.ndjson');
      const full = join(dir, 'inventory-prod-20261123T141500.000Z-bbbbbbbb.ndjson');
      writeFileSync(empty, '');
      writeFileSync(full, line('x', '1') + line('y', '2'));
      const { code, stderr } = await run(['inventory', 'diff', empty, full]);
      assert.equal(code, 1);
      assert.match(stderr, /^warning: .*inventory-prod-20261123T140000\.000Z-aaaaaaaa\.ndjson holds no objects: everything in the other snapshot shows as added$/m);
      const same = await run(['inventory', 'diff', full, full]);
      assert.equal(same.stderr, '', 'nothing to say about two full snapshots of one cluster');
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
