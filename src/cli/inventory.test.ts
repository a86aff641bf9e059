/**
 * `crowsnest inventory collect` as a real process against a fake API server: what it prints and
 * leaves in the report directory when the disk fails under it or a signal stops it. In a child
 * process because the logger writes to file descriptor 2 and signals and file size limits are
 * per process.
 */
import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { once } from 'node:events';
import { readdir, readFile, writeFile } from 'node:fs/promises';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { dirname, join } from 'node:path';
import { afterEach, describe, it } from 'node:test';
import { useScratchDir } from '../../test/helpers/scratch.ts';
import { fileURLToPath } from 'node:url';

const ENTRY = join(dirname(fileURLToPath(import.meta.url)), 'entry.ts');

const scratch = useScratchDir('crowsnest-inventory-cli-');

const cleanups: (() => Promise<void>)[] = [];
afterEach(async () => {
  for (const cleanup of cleanups.splice(0).reverse()) await cleanup();
});

async function listen(server: Server): Promise<string> {
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  cleanups.push(async () => {
    server.closeAllConnections();
    server.close();
    await once(server, 'close');
  });
  return `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
}

/**
 * A fake API server serving only ConfigMaps. `configMaps` answers their list; returning
 * `undefined` leaves the request hanging.
 */
async function fakeApiServer(configMaps: () => unknown): Promise<{ kubeconfig: string; listRequests: () => number }> {
  let listRequests = 0;
  const server = createServer((req, res) => {
    const path = new URL(req.url ?? '/', 'http://localhost').pathname;
    const reply = (body: unknown, status = 200): void => void res.writeHead(status, { 'content-type': 'application/json' }).end(JSON.stringify(body));
    if (path === '/apis') return reply({ kind: 'APIGroupList', groups: [] });
    if (path === '/api/v1') return reply({ groupVersion: 'v1', resources: [{ name: 'configmaps', namespaced: true, kind: 'ConfigMap', verbs: ['list'] }] });
    if (path === '/apis/apiextensions.k8s.io/v1/customresourcedefinitions') return reply({ items: [], metadata: {} });
    if (path === '/api/v1/configmaps') {
      listRequests++;
      const body = configMaps();
      if (body !== undefined) reply(body);
      return;
    }
    reply({ kind: 'Status', code: 404, reason: 'NotFound' }, 404);
  });
  const url = await listen(server);
  const kubeconfig = scratch.path('kubeconfig');
  await writeFile(kubeconfig, [
    'apiVersion: v1',
    'kind: Config',
    `clusters: [{name: fake, cluster: {server: "${url}"}}]`,
    'users: [{name: fake, user: {}}]',
    'contexts: [{name: fake, context: {cluster: fake, user: fake}}]',
    'current-context: fake',
    '',
  ].join('\n'));
  return { kubeconfig, listRequests: () => listRequests };
}

interface Exit {
  readonly code: number | null;
  readonly stdout: string;
  readonly stderr: string;
}

/** Starts `crowsnest inventory collect <args>`; `shell` wraps the command (e.g. to set ulimit). */
function startCli(kubeconfig: string, args: readonly string[], shell?: string): { child: ChildProcess; exit: Promise<Exit> } {
  const command = [process.execPath, ENTRY, 'inventory', 'collect', ...args, '--log-format', 'json'];
  const child = shell
    ? spawn('bash', ['-c', `${shell}; exec "$@"`, 'bash', ...command], { env: childEnv(kubeconfig) })
    : spawn(command[0] as string, command.slice(1), { env: childEnv(kubeconfig) });
  let stdout = '';
  let stderr = '';
  child.stdout?.on('data', (part: Buffer) => (stdout += part.toString('utf8')));
  child.stderr?.on('data', (part: Buffer) => (stderr += part.toString('utf8')));
  const exit = once(child, 'close').then(([code]) => ({ code: code as number | null, stdout, stderr }));
  cleanups.push(async () => {
    if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
    await exit;
  });
  return { child, exit };
}

function childEnv(kubeconfig: string): NodeJS.ProcessEnv {
  return { PATH: process.env['PATH'] ?? '/usr/bin:/bin', HOME: scratch.root, KUBECONFIG: kubeconfig, NODE_DISABLE_COMPILE_CACHE: '1' };
}

/** The `msg` of every JSON log line. */
function logMessages(stderr: string): string[] {
  return stderr.split('\n').flatMap((line) => {
    try {
      return [(JSON.parse(line) as { msg?: string }).msg ?? ''];
    } catch {
      return [];
    }
  });
}

async function until(condition: () => boolean, what: string): Promise<void> {
  for (let i = 0; i < 3000; i++) {
    if (condition()) return;
    await new Promise((resolve) => setTimeout(resolve, 5));
  }
  assert.fail(`timed out waiting for ${what}`);
}

describe('inventory collect: the report directory fails', () => {
  it('exits 1 with the write error when the file size limit is hit (EFBIG), instead of hanging, and leaves no temp file', { timeout: 60_000 }, async () => {
    // ~600 KiB of incompressible data: well over the 200 KiB limit even after gzip.
    const items = Array.from({ length: 600 }, (_, i) => ({ metadata: { name: `cm-${i}`, namespace: 'x', uid: `u-${i}` }, data: { v: randomBytes(768).toString('base64') } }));
    const api = await fakeApiServer(() => ({ kind: 'ConfigMapList', metadata: {}, items }));
    const dir = scratch.path('reports');
    const { exit } = startCli(api.kubeconfig, ['itest', '--report-dir', dir], 'ulimit -f 200');
    const result = await exit;
    assert.equal(result.code, 1, result.stderr);
    assert.match(result.stderr, /^error: cannot write the snapshot .*inventory-itest-\d{8}T\d{6}Z\.ndjson\.gz: EFBIG: file too large/m);
    assert.deepEqual(await readdir(dir), []);
  });
});

describe('inventory collect: interrupted', () => {
  it('while listing: says the incomplete snapshot is not kept, exits 1 and leaves nothing', { timeout: 60_000 }, async () => {
    const api = await fakeApiServer(() => undefined); // the list never answers
    const dir = scratch.path('reports');
    const { child, exit } = startCli(api.kubeconfig, ['itest', '--report-dir', dir]);
    await until(() => api.listRequests() === 1, 'the list request');
    child.kill('SIGTERM');
    const result = await exit;
    assert.equal(result.code, 1, result.stderr);
    assert.ok(logMessages(result.stderr).includes('interrupted: stopping; an incomplete snapshot is not kept'), result.stderr);
    assert.deepEqual(await readdir(dir), []);
  });

  it('while uploading: says the snapshot is kept, keeps it with a summary, and exits 1', { timeout: 60_000 }, async () => {
    const api = await fakeApiServer(() => ({ kind: 'ConfigMapList', metadata: {}, items: [{ metadata: { name: 'a', namespace: 'x', uid: 'u-a' } }] }));
    let uploads = 0;
    const endpoint = await listen(createServer((req) => {
      uploads++;
      req.resume(); // and never answer
    }));
    const dir = scratch.path('reports');
    const { child, exit } = startCli(api.kubeconfig, ['itest', '--report-dir', dir, '--endpoint', `${endpoint}/inventory`]);
    await until(() => uploads === 1, 'the upload');
    child.kill('SIGTERM');
    const result = await exit;
    assert.equal(result.code, 1, result.stderr);
    const messages = logMessages(result.stderr);
    assert.ok(messages.includes('interrupted: stopping the upload; the complete snapshot is kept in the report directory'), result.stderr);
    assert.ok(!messages.some((msg) => /discarded|not kept/.test(msg)), result.stderr);
    assert.match(result.stdout, /NOT delivered .*: upload interrupted \(interrupted by SIGTERM\)/);
    const names = (await readdir(dir)).sort();
    assert.equal(names.length, 2, names.join(', '));
    assert.match(names[0] ?? '', /^inventory-itest-\d{8}T\d{6}Z\.ndjson\.gz$/);
    assert.match(names[1] ?? '', /^inventory-itest-\d{8}T\d{6}Z\.summary\.json$/);
    const summary = JSON.parse(await readFile(join(dir, names[1] ?? ''), 'utf8')) as { result: string; sink: { delivered: boolean } };
    assert.equal(summary.result, 'failure');
    assert.equal(summary.sink.delivered, false);
  });
});
