import assert from 'node:assert/strict';
import { copyFileSync, mkdirSync, mkdtempSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { EXIT_FAILURE, EXIT_OK, EXIT_USAGE, main } from './main.ts';

interface Run {
  readonly code: number;
  readonly stdout: string;
  readonly stderr: string;
}

async function run(argv: readonly string[]): Promise<Run> {
  let stdout = '';
  let stderr = '';
  const code = await main(argv, {
    stdout: (text) => { stdout += text; },
    stderr: (text) => { stderr += text; },
    env: {},
    stderrIsTTY: false,
  });
  return { code, stdout, stderr };
}

const testdata = (name: string): string => new URL(`../ports/testdata/${name}`, import.meta.url).pathname;

/**
 * A proc root whose own namespace has no sockets and whose process 1 sees the hand-made table
 * (127.0.0.1:8080, 0.0.0.0:22, 127.0.0.1:8089, and malformed lines); pid 1 holds 127.0.0.1:8080.
 */
function makeProcRoot(): string {
  const root = mkdtempSync(join(tmpdir(), 'crowsnest-cli-ports-'));
  mkdirSync(join(root, 'net'));
  writeFileSync(join(root, 'net', 'tcp'), '');
  mkdirSync(join(root, '1', 'net'), { recursive: true });
  copyFileSync(testdata('proc-net-tcp-malformed'), join(root, '1', 'net', 'tcp'));
  mkdirSync(join(root, '1', 'fd'));
  writeFileSync(join(root, '1', 'comm'), 'systemd\n');
  symlinkSync('socket:[4242]', join(root, '1', 'fd', '9'));
  return root;
}

describe('crowsnest ports scan', () => {
  let root = '';
  before(() => {
    root = makeProcRoot();
  });
  after(() => rmSync(root, { recursive: true, force: true }));

  test('prints a table of the sockets, and warnings about what it could not see on stderr', async () => {
    const { code, stdout, stderr } = await run(['ports', 'scan', '--proc', root, '--net-pid', '1']);
    assert.equal(code, EXIT_OK);
    assert.equal(
      stdout,
      [
        'PROTO  FAMILY  ADDRESS    PORT  PID  PROCESS',
        'tcp    ipv4    0.0.0.0      22    -  -',
        'tcp    ipv4    127.0.0.1  8080    1  systemd',
        'tcp    ipv4    127.0.0.1  8089    -  -',
        '',
      ].join('\n'),
    );
    assert.match(stderr, /^warning: process info unavailable for 2 sockets \(no process in .* holds them/m);
    assert.match(stderr, new RegExp(`^warning: skipped 11 malformed lines in ${root}/1/net/tcp; first at line 3: expected at least 10 fields`, 'm'));
  });

  test('--output json prints the HostPortScan document', async () => {
    const { code, stdout } = await run(['ports', 'scan', '--proc', root, '--net-pid', '1', '-o', 'json']);
    assert.equal(code, EXIT_OK);
    const scan = JSON.parse(stdout);
    assert.equal(scan.apiVersion, 'crowsnest.dev/v1alpha1');
    assert.equal(scan.kind, 'HostPortScan');
    assert.deepEqual(
      scan.sockets.map((s: { address: string; port: number; pid?: number }) => [s.address, s.port, s.pid]),
      [['0.0.0.0', 22, undefined], ['127.0.0.1', 8080, 1], ['127.0.0.1', 8089, undefined]],
    );
    assert.equal(scan.malformedLines, 11);
  });

  test('without --net-pid, the namespace of the proc root itself is read', async () => {
    const { code, stdout } = await run(['ports', 'scan', '--proc', root, '-o', 'json']);
    assert.equal(code, EXIT_OK);
    assert.deepEqual(JSON.parse(stdout).sockets, []);
  });

  test('a proc root without socket tables fails with exit 1 and says where it looked', async () => {
    const { code, stderr } = await run(['ports', 'scan', '--proc', join(root, 'missing')]);
    assert.equal(code, EXIT_FAILURE);
    assert.equal(stderr, `error: no socket tables (tcp, tcp6, udp, udp6) in ${root}/missing/net: is ${root}/missing a proc file system?\n`);
  });

  const usageErrors: readonly [string, readonly string[], RegExp][] = [
    ['a --net-pid that is not a pid', ['--net-pid', 'init'], /^error: invalid value "init" for --net-pid: must be a process id/],
    ['a --net-pid of 0', ['--net-pid', '0'], /^error: invalid value "0" for --net-pid/],
    ['an empty --proc', ['--proc', ''], /^error: invalid value "" for --proc: must not be empty/],
    ['an unknown output format', ['-o', 'yaml'], /error: option '-o, --output <format>' argument 'yaml' is invalid/],
    ['a positional argument', ['now'], /error: too many arguments/],
  ];
  for (const [what, flags, message] of usageErrors) {
    test(`${what} is a usage error (exit 2)`, async () => {
      const { code, stderr } = await run(['ports', 'scan', ...flags]);
      assert.equal(code, EXIT_USAGE);
      assert.match(stderr, message);
    });
  }

  test('--help explains the flags, with examples for a host and for a pod', async () => {
    const { code, stdout } = await run(['ports', 'scan', '--help']);
    assert.equal(code, EXIT_OK);
    assert.match(stdout, /--proc <dir>/);
    assert.match(stdout, /--net-pid <pid>/);
    assert.match(stdout, /-o, --output <format>/);
    assert.match(stdout, /hostPID: true/);
    assert.match(stdout, /crowsnest ports scan --proc \/host\/proc --net-pid 1/);
  });

  test('crowsnest ports alone lists its subcommands and is a usage error', async () => {
    const { code, stderr } = await run(['ports']);
    assert.equal(code, EXIT_USAGE);
    assert.match(stderr, /scan \[options\]/);
  });
});
