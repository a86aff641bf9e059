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
import { basename, dirname, join } from 'node:path';
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

/** An answer of the fake API server other than 200. */
interface FakeAnswer {
  readonly status: number;
  readonly headers?: Readonly<Record<string, string>>;
  readonly body: unknown;
}

/**
 * A fake API server serving only ConfigMaps. `configMaps` answers their list (the n-th request,
 * from 0): a body for 200, a {@link FakeAnswer}, or `undefined` to leave the request hanging.
 */
async function fakeApiServer(configMaps: (n: number) => unknown, options: { discoveryFailures?: number } = {}): Promise<{ kubeconfig: string; listRequests: () => number; requests: () => number }> {
  let listRequests = 0;
  let requests = 0;
  let discoveryFailures = options.discoveryFailures ?? 0;
  const server = createServer((req, res) => {
    requests++;
    const path = new URL(req.url ?? '/', 'http://localhost').pathname;
    const reply = (body: unknown, status = 200, headers: Readonly<Record<string, string>> = {}): void =>
      void res.writeHead(status, { 'content-type': 'application/json', ...headers }).end(JSON.stringify(body));
    if (path === '/apis') {
      if (discoveryFailures-- > 0) return reply({ kind: 'Status', code: 503, reason: 'ServiceUnavailable', message: 'starting' }, 503);
      return reply({ kind: 'APIGroupList', groups: [] });
    }
    if (path === '/api/v1') {
      return reply({ groupVersion: 'v1', resources: ['configmaps', 'pods', 'secrets', 'services'].map((name) => ({ name, namespaced: true, kind: name, verbs: ['list'] })) });
    }
    if (path === '/apis/apiextensions.k8s.io/v1/customresourcedefinitions') return reply({ items: [], metadata: {} });
    if (path === '/api/v1/configmaps') {
      const body = configMaps(listRequests++);
      if (body === undefined) return;
      const answer = body as Partial<FakeAnswer>;
      if (typeof answer.status === 'number') return reply(answer.body, answer.status, answer.headers);
      return reply(body);
    }
    if (['/api/v1/pods', '/api/v1/secrets', '/api/v1/services'].includes(path)) return reply({ metadata: {}, items: [] });
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
  return { kubeconfig, listRequests: () => listRequests, requests: () => requests };
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
    assert.match(result.stderr, /^error: cannot write the snapshot .*inventory-itest-\d{8}T\d{6}\.\d{3}Z-[0-9a-f]{8}\.ndjson\.gz: EFBIG: file too large/m);
    assert.deepEqual(await readdir(dir), []);
  });
});

describe('inventory collect: the report directory fails under an endpoint run', () => {
  it('leaves neither snapshot nor summary when the spool cannot be finished (EFBIG), and exits 1', { timeout: 60_000 }, async () => {
    const items = Array.from({ length: 600 }, (_, i) => ({ metadata: { name: `cm-${i}`, namespace: 'x', uid: `u-${i}` }, data: { v: randomBytes(768).toString('base64') } }));
    const api = await fakeApiServer(() => ({ kind: 'ConfigMapList', metadata: {}, items }));
    const endpoint = await scriptedEndpoint(() => 204);
    const dir = scratch.path('reports');
    const result = await startCli(api.kubeconfig, ['itest', '--resources', 'configmaps', '--report-dir', dir, '--endpoint', endpoint.url], 'ulimit -f 200').exit;
    assert.equal(result.code, 1, result.stderr);
    assert.match(result.stderr, /EFBIG: file too large/);
    assert.deepEqual(await readdir(dir), [], 'no summary claims a snapshot that does not exist');
    assert.equal(endpoint.requests(), 0);
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
    assert.match(names[0] ?? '', /^inventory-itest-\d{8}T\d{6}\.\d{3}Z-[0-9a-f]{8}\.ndjson\.gz$/);
    assert.match(names[1] ?? '', /^inventory-itest-\d{8}T\d{6}\.\d{3}Z-[0-9a-f]{8}\.summary\.json$/);
    const summary = JSON.parse(await readFile(join(dir, names[1] ?? ''), 'utf8')) as { result: string; sink: { delivered: boolean } };
    assert.equal(summary.result, 'failure');
    assert.equal(summary.sink.delivered, false);
  });
});

const CONFIG_MAPS = { kind: 'ConfigMapList', metadata: {}, items: [{ metadata: { name: 'a', namespace: 'x', uid: 'u-a' } }, { metadata: { name: 'b', namespace: 'x', uid: 'u-b' } }] };
/** Only ConfigMaps: one type, so runs are short and their requests countable. */
const ONLY_CONFIG_MAPS = ['--resources', 'configmaps', '--output', 'json'];

/** Every file left in `dir`, and those among them that are temporary files of a run that died. */
async function leftIn(dir: string): Promise<{ names: string[]; temporary: string[] }> {
  const names = (await readdir(dir).catch(() => [] as string[])).sort();
  return { names, temporary: names.filter((name) => name.endsWith('.tmp')) };
}

/** An endpoint answering each request with `answer(n)`: a status, `'reset'` (connection destroyed) or `'silent'`. */
async function scriptedEndpoint(answer: (n: number) => number | 'reset' | 'silent'): Promise<{ url: string; requests: () => number }> {
  let requests = 0;
  const url = await listen(createServer((req, res) => {
    const action = answer(requests++);
    req.resume();
    req.on('end', () => {
      if (action === 'silent') return;
      if (action === 'reset') return void req.socket.destroy();
      res.writeHead(action).end(action === 204 ? undefined : 'scripted failure');
    });
  }));
  return { url: `${url}/inventory`, requests: () => requests };
}

// The runtime's timers are unref'd. Before the CLI held its process open for the whole command,
// each of these runs ended in the middle of its first wait with exit 13 ("unsettled top-level
// await"): no summary, no retry, and a temporary or orphaned snapshot left behind.
describe('inventory collect: a wait inside the run never ends the process', () => {
  it('an endpoint answering 500 once, then 204: the chunk is retried after its backoff and delivered (exit 0)', { timeout: 60_000 }, async () => {
    const api = await fakeApiServer(() => CONFIG_MAPS);
    const endpoint = await scriptedEndpoint((n) => (n === 0 ? 500 : 204));
    const dir = scratch.path('reports');
    const result = await startCli(api.kubeconfig, ['itest', ...ONLY_CONFIG_MAPS, '--report-dir', dir, '--endpoint', endpoint.url]).exit;
    assert.equal(result.code, 0, result.stderr);
    const summary = JSON.parse(result.stdout) as { result: string; sink: { delivered: boolean; retries: number } };
    assert.deepEqual([summary.result, summary.sink.delivered, summary.sink.retries], ['success', true, 1]);
    assert.equal(endpoint.requests(), 2);
    assert.deepEqual((await leftIn(dir)).temporary, []);
  });

  it('an endpoint that resets the connection once: retried and delivered (exit 0)', { timeout: 60_000 }, async () => {
    const api = await fakeApiServer(() => CONFIG_MAPS);
    const endpoint = await scriptedEndpoint((n) => (n === 0 ? 'reset' : 204));
    const dir = scratch.path('reports');
    const result = await startCli(api.kubeconfig, ['itest', ...ONLY_CONFIG_MAPS, '--report-dir', dir, '--endpoint', endpoint.url]).exit;
    assert.equal(result.code, 0, result.stderr);
    assert.equal((JSON.parse(result.stdout) as { sink: { delivered: boolean } }).sink.delivered, true);
  });

  it('an endpoint where nothing listens: retried, then the snapshot is kept with its summary (exit 1)', { timeout: 60_000 }, async () => {
    const api = await fakeApiServer(() => CONFIG_MAPS);
    const closed = await scriptedEndpoint(() => 204);
    await cleanups.pop()!(); // stop listening: connections are refused from now on
    const dir = scratch.path('reports');
    const result = await startCli(api.kubeconfig, ['itest', ...ONLY_CONFIG_MAPS, '--report-dir', dir, '--endpoint', closed.url, '--upload-attempts', '2']).exit;
    assert.equal(result.code, 1, result.stderr);
    const summary = JSON.parse(result.stdout) as { result: string; sink: { delivered: boolean; error: string; path: string } };
    assert.equal(summary.result, 'failure');
    assert.match(summary.sink.error, /unreachable for chunk 0 after 2 attempts: connection refused \(ECONNREFUSED\)/);
    const left = await leftIn(dir);
    assert.deepEqual(left.temporary, []);
    assert.equal(left.names.length, 2, left.names.join(', '));
    assert.ok(left.names.includes(basename(summary.sink.path)));
  });

  it('a request rate limit that makes the run wait (--qps 1 --burst 1): complete (exit 0)', { timeout: 60_000 }, async () => {
    const api = await fakeApiServer(() => CONFIG_MAPS);
    const dir = scratch.path('reports');
    const result = await startCli(api.kubeconfig, ['itest', '--resources', 'configmaps,pods,secrets', '--output', 'json', '--report-dir', dir, '--qps', '1', '--burst', '1']).exit;
    assert.equal(result.code, 0, result.stderr);
    assert.equal((JSON.parse(result.stdout) as { objects: number }).objects, 2);
    assert.deepEqual((await leftIn(dir)).temporary, []);
  });

  it('the API server asking to wait (429 with Retry-After: 1): the page is asked again and the run completes (exit 0)', { timeout: 60_000 }, async () => {
    const api = await fakeApiServer((n) => (n === 0 ? { status: 429, headers: { 'retry-after': '1' }, body: { kind: 'Status', code: 429, reason: 'TooManyRequests', message: 'slow down' } } : CONFIG_MAPS));
    const dir = scratch.path('reports');
    const result = await startCli(api.kubeconfig, ['itest', ...ONLY_CONFIG_MAPS, '--report-dir', dir]).exit;
    assert.equal(result.code, 0, result.stderr);
    const summary = JSON.parse(result.stdout) as { objects: number; types: { retries: number }[] };
    assert.equal(summary.objects, 2);
    assert.equal(summary.types[0]!.retries, 1);
    assert.equal(api.listRequests(), 2);
  });

  it('an API server not ready yet (503 twice on discovery): discovery is asked again after its backoff, the run completes (exit 0)', { timeout: 60_000 }, async () => {
    const api = await fakeApiServer(() => CONFIG_MAPS, { discoveryFailures: 2 });
    const dir = scratch.path('reports');
    const result = await startCli(api.kubeconfig, ['itest', ...ONLY_CONFIG_MAPS, '--report-dir', dir]).exit;
    assert.equal(result.code, 0, result.stderr);
    assert.equal((JSON.parse(result.stdout) as { objects: number }).objects, 2);
  });

  it('a --timeout longer than Node timers can hold (700h) keeps every request alive instead of timing it out at once', { timeout: 60_000 }, async () => {
    const api = await fakeApiServer(() => CONFIG_MAPS);
    const endpoint = await scriptedEndpoint(() => 204);
    const dir = scratch.path('reports');
    const result = await startCli(api.kubeconfig, ['itest', ...ONLY_CONFIG_MAPS, '--report-dir', dir, '--endpoint', endpoint.url, '--timeout', '700h', '--upload-attempts', '1']).exit;
    assert.equal(result.code, 0, result.stderr);
    assert.equal((JSON.parse(result.stdout) as { sink: { delivered: boolean } }).sink.delivered, true);
  });

  it('a run killed (SIGKILL) during its upload leaves a summary, so the next run re-sends its snapshot', { timeout: 60_000 }, async () => {
    const api = await fakeApiServer(() => CONFIG_MAPS);
    const silent = await scriptedEndpoint(() => 'silent');
    const dir = scratch.path('reports');
    const killed = startCli(api.kubeconfig, ['itest', ...ONLY_CONFIG_MAPS, '--report-dir', dir, '--endpoint', silent.url]);
    await until(() => silent.requests() === 1, 'the upload');
    killed.child.kill('SIGKILL');
    await killed.exit;
    const kept = (await leftIn(dir)).names;
    const keptSummary = kept.find((name) => name.endsWith('.summary.json'));
    assert.ok(keptSummary, `a summary for the snapshot being sent: ${kept.join(', ')}`);
    const keptRunId = (JSON.parse(await readFile(join(dir, keptSummary), 'utf8')) as { runId: string }).runId;

    const good = await scriptedEndpoint(() => 204);
    const next = await startCli(api.kubeconfig, ['itest', ...ONLY_CONFIG_MAPS, '--report-dir', dir, '--endpoint', good.url]).exit;
    assert.equal(next.code, 0, next.stderr);
    const summary = JSON.parse(next.stdout) as { resent: { runId: string; delivered: boolean }[] };
    assert.deepEqual(summary.resent.map((r) => [r.runId, r.delivered]), [[keptRunId, true]]);
    assert.deepEqual((await leftIn(dir)).names.filter((name) => !name.endsWith('.summary.json')), [], 'both snapshots delivered and removed');
  });
});

describe('inventory collect: input that would produce nothing is refused before any work (exit 2)', () => {
  const refused = async (args: readonly string[], message: RegExp, options: { requests?: number } = {}): Promise<void> => {
    const api = await fakeApiServer(() => CONFIG_MAPS);
    const dir = scratch.path('reports');
    const started = Date.now();
    const result = await startCli(api.kubeconfig, ['--report-dir', dir, ...args]).exit;
    assert.equal(result.code, 2, `${result.stderr}${result.stdout}`);
    assert.match(result.stderr, message);
    assert.ok(Date.now() - started < 15_000, 'refused promptly');
    assert.equal(api.listRequests(), 0, 'nothing was listed');
    if (options.requests !== undefined) assert.equal(api.requests(), options.requests, 'requests to the API server');
    assert.deepEqual((await leftIn(dir)).names, [], 'nothing was written');
  };

  it('a --resources entry no served type matches, naming the nearest one', async () => {
    await refused(['itest', '--resources', 'configmaps,podz'], /^error: --resources "podz" matches no resource type this cluster serves \(did you mean "pods"\?\); nothing was collected$/m);
  });

  it('a --remove-types entry no served type matches (a typo there would ship what was meant to stay out)', async () => {
    await refused(['itest', '--resources', 'configmaps,secrets', '--remove-types', 'secret'], /--remove-types "secret" matches no resource type .*did you mean "secrets"/);
  });

  it('an invalid --label-selector, before connecting', async () => {
    await refused(['itest', '--label-selector', 'tier in (web'], /^error: invalid value "tier in \(web" for --label-selector: expected "," or "\)" in the value list, found the end at position 13$/m, { requests: 0 });
  });

  it('an absurd --page-size, before connecting', async () => {
    await refused(['itest', '--page-size', '99999999999999999999'], /invalid value "99999999999999999999" for --page-size: must be at most 100000/, { requests: 0 });
  });

  it('a cluster id too long for a file name, before connecting', async () => {
    await refused(['x'.repeat(300)], /invalid cluster id "x{20}…": 300 characters, at most 63 allowed/, { requests: 0 });
  });

  it('an empty --report-dir, before connecting', async () => {
    const api = await fakeApiServer(() => CONFIG_MAPS);
    const result = await startCli(api.kubeconfig, ['itest', '--report-dir', '']).exit;
    assert.equal(result.code, 2, result.stderr);
    assert.match(result.stderr, /^error: invalid value "" for --report-dir: must not be empty/m);
    assert.equal(api.requests(), 0);
  });

  // Node's recursive mkdir spun at 100 % CPU here, ignoring the first SIGTERM.
  it('a --report-dir that cannot be created (/proc/nope), at once and before connecting', { timeout: 30_000 }, async () => {
    const api = await fakeApiServer(() => CONFIG_MAPS);
    const result = await startCli(api.kubeconfig, ['itest', '--report-dir', '/proc/nope/reports']).exit;
    assert.equal(result.code, 2, result.stderr);
    assert.match(result.stderr, /^error: report directory \/proc\/nope\/reports: cannot create \/proc\/nope \(ENOENT.*nothing was collected$/m);
    assert.equal(api.requests(), 0);
  });

  it('a --report-dir where no file can be created, before listing anything', async () => {
    const api = await fakeApiServer(() => CONFIG_MAPS);
    const result = await startCli(api.kubeconfig, ['itest', '--report-dir', '/proc/self']).exit;
    assert.equal(result.code, 2, result.stderr);
    assert.match(result.stderr, /^error: report directory \/proc\/self: cannot create files in it/m);
    assert.equal(api.listRequests(), 0);
  });
});
