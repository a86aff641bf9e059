import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { once } from 'node:events';
import { readdirSync, readlinkSync } from 'node:fs';
import { writeFile } from 'node:fs/promises';
import { createServer, type IncomingHttpHeaders, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { join } from 'node:path';
import { afterEach, describe, it } from 'node:test';
import { useScratchDir } from '../../test/helpers/scratch.ts';
import { gunzipSync, gzipSync } from 'node:zlib';
import { FakeClock } from '../kube/clock.ts';
import { K8sCollectorReceiver } from '../../test/helpers/k8s-collector-receiver.ts';
import { LoginSession, loginUrlFor } from './endpoint-login.ts';
import { uploadSnapshot, UploadError, type EndpointOptions, type UploadResult } from './upload.ts';

interface Received {
  readonly headers: IncomingHttpHeaders;
  /** Body bytes as they arrived. */
  readonly size: number;
  /** The body, gunzipped when it says it is gzip. */
  readonly json: { objects: unknown[] };
  readonly text: string;
}

type Reply = (res: ServerResponse, index: number) => void;

interface Endpoint {
  url: string;
  readonly received: Received[];
  /** Requests that arrived, including those never answered. */
  arrived: number;
  /** Their paths, in order. */
  readonly paths: string[];
  close(): Promise<void>;
}

const servers: Server[] = [];

/** An HTTP endpoint on 127.0.0.1 that answers the n-th request with `reply(res, n)`. */
async function endpoint(reply: Reply = (res) => res.writeHead(204).end()): Promise<Endpoint> {
  const state: Endpoint = {
    url: '',
    received: [],
    arrived: 0,
    paths: [],
    close: async () => {
      server.closeAllConnections();
      server.close();
      await once(server, 'close');
    },
  };
  const server = createServer((req, res) => {
    const index = state.arrived++;
    state.paths.push(req.url ?? '');
    const parts: Buffer[] = [];
    req.on('data', (part: Buffer) => parts.push(part));
    req.on('end', () => {
      const raw = Buffer.concat(parts);
      const text = (req.headers['content-encoding'] === 'gzip' ? gunzipSync(raw) : raw).toString('utf8');
      state.received.push({ headers: req.headers, size: raw.length, text, json: JSON.parse(text) as { objects: unknown[] } });
      reply(res, index);
    });
  });
  servers.push(server);
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  state.url = `http://127.0.0.1:${(server.address() as AddressInfo).port}/v1/inventory`;
  return state;
}

afterEach(async () => {
  for (const server of servers.splice(0)) {
    server.closeAllConnections();
    if (server.listening) {
      server.close();
      await once(server, 'close');
    }
  }
});

const scratch = useScratchDir('crowsnest-upload-');

/** Writes `objects` as the spool file the collector leaves: gzip NDJSON. */
async function spool(objects: readonly unknown[]): Promise<string> {
  const path = scratch.path('spool', '.ndjson.gz');
  await writeFile(path, gzipSync(objects.map((o) => `${JSON.stringify(o)}\n`).join('')));
  return path;
}

/** An object whose NDJSON line is exactly `bytes` long. */
function objectOfSize(name: string, bytes: number): Record<string, unknown> {
  const object = { kind: 'ConfigMap', metadata: { name }, data: { pad: '' } };
  const base = JSON.stringify(object).length;
  object.data.pad = 'x'.repeat(bytes - base);
  assert.equal(JSON.stringify(object).length, bytes);
  return object;
}

function options(url: string, overrides: Partial<EndpointOptions> = {}): EndpointOptions {
  return {
    url,
    clusterId: 'prod-eu',
    runId: 'run-0001',
    chunkBytes: 4 * 1024 * 1024,
    timeoutMs: 10_000,
    maxAttempts: 3,
    retryInitialMs: 100,
    userAgent: 'crowsnest/test',
    signal: new AbortController().signal,
    clock: new FakeClock(),
    ...overrides,
  };
}

/** Polls (real time, only to notice progress; correctness never depends on it) until `condition` holds. */
async function until(condition: () => boolean, what: string): Promise<void> {
  for (let i = 0; i < 2000; i++) {
    if (condition()) return;
    await new Promise((resolve) => setTimeout(resolve, 5));
  }
  assert.fail(`timed out waiting for ${what}`);
}

/** Fires every retry delay of `clock` as soon as it is scheduled. Returns the stop function. */
function autoAdvance(clock: FakeClock): () => void {
  const interval = setInterval(() => {
    if (clock.pendingTimers > 0) clock.advance(10 * 60_000);
  }, 2);
  return () => clearInterval(interval);
}

function names(received: readonly Received[]): string[][] {
  return received.map((r) => r.json.objects.map((o) => (o as { metadata: { name: string } }).metadata.name));
}

describe('uploadSnapshot: chunking', () => {
  it('cuts the snapshot into chunks by the byte budget and sends every object once, in order', async () => {
    const server = await endpoint();
    const objects = Array.from({ length: 10 }, (_, i) => objectOfSize(`cm-${i}`, 100));
    // each line counts 101 bytes (with its separator): two fit into 250, a third does not
    const result = await uploadSnapshot(await spool(objects), options(server.url, { chunkBytes: 250 }));

    assert.deepEqual(names(server.received), [['cm-0', 'cm-1'], ['cm-2', 'cm-3'], ['cm-4', 'cm-5'], ['cm-6', 'cm-7'], ['cm-8', 'cm-9']]);
    assert.deepEqual(server.received.flatMap((r) => r.json.objects), objects);
    assert.deepEqual(result, {
      chunks: 5,
      objects: 10,
      rawBytes: server.received.reduce((sum, r) => sum + Buffer.byteLength(r.text), 0),
      sentBytes: server.received.reduce((sum, r) => sum + r.size, 0),
      retries: 0,
    });
    assert.equal(result.rawBytes, 5 * (2 * 100 + 1 + '{"objects":[]}'.length));
  });

  it('labels every chunk with the run, its index and whether it is the last', async () => {
    const server = await endpoint();
    const objects = Array.from({ length: 3 }, (_, i) => objectOfSize(`cm-${i}`, 100));
    await uploadSnapshot(await spool(objects), options(server.url, { chunkBytes: 150 }));

    assert.equal(server.received.length, 3);
    for (const [index, { headers }] of server.received.entries()) {
      assert.equal(headers['x-crowsnest-run-id'], 'run-0001');
      assert.equal(headers['x-crowsnest-cluster-id'], 'prod-eu');
      assert.equal(headers['x-crowsnest-chunk-index'], String(index));
      assert.equal(headers['x-crowsnest-chunk-final'], index === 2 ? 'true' : 'false');
      assert.equal(headers['content-encoding'], 'gzip');
      assert.equal(headers['content-type'], 'application/json');
      assert.equal(headers['user-agent'], 'crowsnest/test');
    }
  });

  it('sends to <endpoint>/sink/send, without Authorization when there is no login session', async () => {
    const server = await endpoint();
    await uploadSnapshot(await spool([objectOfSize('a', 80)]), options(`${server.url}/`));
    assert.deepEqual(server.paths, ['/v1/inventory/sink/send']);
    assert.equal(server.received[0]?.headers['authorization'], undefined);
  });

  it('sends an object larger than the budget alone', async () => {
    const server = await endpoint();
    const objects = [objectOfSize('a', 100), objectOfSize('b', 100), objectOfSize('big', 1000), objectOfSize('c', 100), objectOfSize('d', 100)];
    const result = await uploadSnapshot(await spool(objects), options(server.url, { chunkBytes: 250 }));
    assert.deepEqual(names(server.received), [['a', 'b'], ['big'], ['c', 'd']]);
    assert.equal(result.chunks, 3);
    assert.equal(result.objects, 5);
  });

  it('sends a first object larger than the budget alone too', async () => {
    const server = await endpoint();
    const objects = [objectOfSize('big', 1000), objectOfSize('a', 100)];
    await uploadSnapshot(await spool(objects), options(server.url, { chunkBytes: 250 }));
    assert.deepEqual(names(server.received), [['big'], ['a']]);
  });

  it('sends one final {"objects":[]} chunk for an empty snapshot', async () => {
    const server = await endpoint();
    const result = await uploadSnapshot(await spool([]), options(server.url));
    assert.equal(server.received.length, 1);
    assert.equal(server.received[0]?.text, '{"objects":[]}');
    assert.equal(server.received[0]?.headers['x-crowsnest-chunk-index'], '0');
    assert.equal(server.received[0]?.headers['x-crowsnest-chunk-final'], 'true');
    assert.deepEqual(result, { chunks: 1, objects: 0, rawBytes: 14, sentBytes: server.received[0]?.size, retries: 0 });
  });

  it('accepts any 2xx answer as success', async () => {
    const server = await endpoint((res) => res.writeHead(200, { 'content-type': 'application/json' }).end('{"ok":true}'));
    const result = await uploadSnapshot(await spool([objectOfSize('a', 80)]), options(server.url));
    assert.equal(result.chunks, 1);
    assert.equal(result.retries, 0);
  });
});

describe('uploadSnapshot: retries', () => {
  it('waits as long as Retry-After asks on 503, on the injected clock, then succeeds', async () => {
    const server = await endpoint((res, n) => {
      if (n === 0) res.writeHead(503, { 'retry-after': '1' }).end('busy');
      else res.writeHead(204).end();
    });
    const clock = new FakeClock();
    const retries: unknown[] = [];
    let settled = false;
    const upload = uploadSnapshot(await spool([objectOfSize('a', 80)]), options(server.url, { clock, onRetry: (info) => retries.push(info) }))
      .finally(() => (settled = true));

    await until(() => clock.pendingTimers === 1, 'the retry delay');
    assert.deepEqual(retries, [{ chunk: 0, attempt: 1, waitMs: 1000, reason: 'HTTP 503: busy' }]);
    clock.advance(999);
    assert.equal(clock.pendingTimers, 1, 'still waiting 1 ms before Retry-After passed');
    assert.equal(server.arrived, 1);
    assert.equal(settled, false);
    clock.advance(1);
    assert.equal(clock.pendingTimers, 0);

    const result = await upload;
    assert.equal(server.arrived, 2);
    assert.equal(result.retries, 1);
    assert.equal(result.chunks, 1);
    assert.equal(server.received[1]?.headers['x-crowsnest-chunk-index'], '0', 'the same chunk is sent again');
    assert.deepEqual(server.received[0]?.json, server.received[1]?.json);
  });

  it('reads Retry-After as an HTTP date against the injected clock and caps long waits at 2 minutes', async () => {
    const clock = new FakeClock();
    const retryAfter = [new Date(clock.now() + 5000).toUTCString(), '3600'];
    const server = await endpoint((res, n) => {
      if (n < 2) res.writeHead(429, { 'retry-after': retryAfter[n] }).end();
      else res.writeHead(204).end();
    });
    const waits: number[] = [];
    const stop = autoAdvance(clock);
    try {
      const result = await uploadSnapshot(await spool([objectOfSize('a', 80)]), options(server.url, { clock, onRetry: (info) => waits.push(info.waitMs) }));
      assert.equal(result.retries, 2);
    } finally {
      stop();
    }
    assert.deepEqual(waits, [5000, 120_000]);
  });

  it('backs off exponentially without Retry-After and counts retries across chunks', async () => {
    const server = await endpoint((res, n) => {
      // chunk 0: fails once; chunk 1: fails twice
      if (n === 0 || n === 2 || n === 3) res.writeHead(500).end('oops');
      else res.writeHead(204).end();
    });
    const clock = new FakeClock();
    const retries: { chunk: number; attempt: number; waitMs: number; reason: string }[] = [];
    const stop = autoAdvance(clock);
    let result: UploadResult | undefined;
    try {
      const objects = [objectOfSize('a', 100), objectOfSize('b', 100)];
      result = await uploadSnapshot(await spool(objects), options(server.url, { clock, chunkBytes: 150, maxAttempts: 3, onRetry: (info) => retries.push(info) }));
    } finally {
      stop();
    }
    assert.equal(result?.retries, 3);
    assert.equal(result?.chunks, 2);
    assert.deepEqual(names(server.received), [['a'], ['a'], ['b'], ['b'], ['b']]);
    assert.deepEqual(retries.map(({ chunk, attempt, reason }) => ({ chunk, attempt, reason })), [
      { chunk: 0, attempt: 1, reason: 'HTTP 500: oops' },
      { chunk: 1, attempt: 1, reason: 'HTTP 500: oops' },
      { chunk: 1, attempt: 2, reason: 'HTTP 500: oops' },
    ]);
    // 100 ms, jitter up to 20 %, doubling per attempt of the same chunk
    const [first, second, third] = retries.map((r) => r.waitMs) as [number, number, number];
    assert.ok(first >= 100 && first <= 120, `first wait ${first}`);
    assert.ok(second >= 100 && second <= 120, `a new chunk starts its backoff over, got ${second}`);
    assert.ok(third >= 200 && third <= 240, `second wait of a chunk doubles, got ${third}`);
  });

  it('gives up after maxAttempts of 5xx with the last status', async () => {
    const server = await endpoint((res) => res.writeHead(502).end('bad gateway'));
    const clock = new FakeClock();
    const stop = autoAdvance(clock);
    try {
      await assert.rejects(uploadSnapshot(await spool([objectOfSize('a', 80)]), options(server.url, { clock, maxAttempts: 2 })), (err: unknown) => {
        assert.ok(err instanceof UploadError);
        assert.equal(err.message, `endpoint ${new URL(server.url).host} unreachable for chunk 0 after 2 attempts: HTTP 502: bad gateway`);
        assert.equal(err.attempts, 2);
        assert.equal(err.status, 502);
        assert.equal(err.chunk, 0);
        return true;
      });
    } finally {
      stop();
    }
    assert.equal(server.arrived, 2);
  });

  it('reports the chunk that failed when earlier chunks were delivered', async () => {
    const server = await endpoint((res, n) => (n === 0 ? res.writeHead(204).end() : res.writeHead(400).end('bad chunk')));
    const objects = [objectOfSize('a', 100), objectOfSize('b', 100)];
    await assert.rejects(uploadSnapshot(await spool(objects), options(server.url, { chunkBytes: 150 })), (err: unknown) => {
      assert.ok(err instanceof UploadError);
      assert.equal(err.chunk, 1);
      assert.equal(err.message, `endpoint ${new URL(server.url).host} refused chunk 1: HTTP 400: bad chunk`);
      return true;
    });
  });

  const refusals: { status: number; hint: string }[] = [
    { status: 401, hint: ' (it wants credentials: set CROWSNEST_ACCESS_KEY and CROWSNEST_SECRET_KEY)' },
    { status: 403, hint: ' (check the access and secret keys)' },
    { status: 413, hint: ' (lower --chunk-size)' },
    { status: 400, hint: '' },
  ];
  for (const { status, hint } of refusals) {
    it(`fails at once on ${status}${hint ? ` with the hint${hint}` : ''}`, async () => {
      const server = await endpoint((res) => res.writeHead(status).end('denied'));
      const clock = new FakeClock();
      await assert.rejects(uploadSnapshot(await spool([objectOfSize('a', 80)]), options(server.url, { clock, maxAttempts: 5 })), (err: unknown) => {
        assert.ok(err instanceof UploadError);
        assert.equal(err.message, `endpoint ${new URL(server.url).host} refused chunk 0: HTTP ${status}: denied${hint}`);
        assert.equal(err.attempts, 1);
        assert.equal(err.status, status);
        return true;
      });
      assert.equal(server.arrived, 1);
      assert.equal(clock.pendingTimers, 0);
    });
  }

  it('retries a refused connection and fails after maxAttempts without a status', async () => {
    const closed = await endpoint();
    const url = closed.url;
    await closed.close();
    const clock = new FakeClock();
    const retries: string[] = [];
    const stop = autoAdvance(clock);
    try {
      await assert.rejects(uploadSnapshot(await spool([objectOfSize('a', 80)]), options(url, { clock, maxAttempts: 3, onRetry: (info) => retries.push(info.reason) })), (err: unknown) => {
        assert.ok(err instanceof UploadError);
        assert.equal(err.attempts, 3);
        assert.equal(err.status, undefined);
        assert.equal(err.message, `endpoint ${new URL(url).host} unreachable for chunk 0 after 3 attempts: connection refused (ECONNREFUSED): nothing listens there, or the server is down`);
        return true;
      });
    } finally {
      stop();
    }
    assert.equal(retries.length, 2);
  });
});

describe('uploadSnapshot: cancellation', () => {
  it('stops waiting for a retry when the signal aborts, without another request', async () => {
    const server = await endpoint((res) => res.writeHead(503).end());
    const clock = new FakeClock();
    const controller = new AbortController();
    const upload = uploadSnapshot(await spool([objectOfSize('a', 80)]), options(server.url, { clock, signal: controller.signal, maxAttempts: 10 }));
    await until(() => clock.pendingTimers === 1, 'the retry delay');
    controller.abort();
    await assert.rejects(upload, (err: unknown) => {
      assert.ok(!(err instanceof UploadError), 'an abort is not an endpoint failure');
      return true;
    });
    assert.equal(server.arrived, 1);
    assert.equal(clock.pendingTimers, 0);
  });

  it('abandons a request the endpoint does not answer', async () => {
    const server = await endpoint(() => {
      // never answers
    });
    const controller = new AbortController();
    const upload = uploadSnapshot(await spool([objectOfSize('a', 80)]), options(server.url, { signal: controller.signal }));
    await until(() => server.received.length === 1, 'the request');
    controller.abort();
    await assert.rejects(upload, (err: unknown) => !(err instanceof UploadError));
  });

  it('does not start when the signal has already aborted', async () => {
    const server = await endpoint();
    const controller = new AbortController();
    controller.abort();
    await assert.rejects(uploadSnapshot(await spool([objectOfSize('a', 80)]), options(server.url, { signal: controller.signal })));
    assert.equal(server.arrived, 0);
  });
});

describe('uploadSnapshot: file handles', () => {
  /** Whether this process holds `path` open (Linux: /proc/self/fd). */
  const isOpen = (path: string): boolean =>
    readdirSync('/proc/self/fd').some((fd) => {
      try {
        return readlinkSync(`/proc/self/fd/${fd}`) === path;
      } catch {
        return false; // closed meanwhile (readdir's own descriptor, for one)
      }
    });
  /** A spool far larger than the streams buffer, so reading is still under way when a chunk fails. */
  const bigSpool = async (): Promise<string> => {
    const path = scratch.path('spool', '.ndjson.gz');
    const lines = Array.from({ length: 4000 }, (_, i) => `${JSON.stringify({ kind: 'ConfigMap', metadata: { name: `cm-${i}` }, data: { v: randomBytes(300).toString('base64') } })}\n`);
    await writeFile(path, gzipSync(lines.join('')));
    return path;
  };

  it('releases the spool file when a chunk is refused early', async () => {
    const server = await endpoint((res) => res.writeHead(400).end('no'));
    const path = await bigSpool();
    await assert.rejects(uploadSnapshot(path, options(server.url, { chunkBytes: 4096 })), UploadError);
    await until(() => !isOpen(path), 'the spool file to be closed');
  });

  it('releases the spool file when the upload is aborted', async () => {
    const server = await endpoint(() => {
      // never answers
    });
    const path = await bigSpool();
    const controller = new AbortController();
    const upload = uploadSnapshot(path, options(server.url, { chunkBytes: 4096, signal: controller.signal }));
    await until(() => server.received.length === 1, 'the first request');
    assert.ok(isOpen(path), 'the spool is being read');
    controller.abort();
    await assert.rejects(upload, (err: unknown) => !(err instanceof UploadError));
    await until(() => !isOpen(path), 'the spool file to be closed');
  });

  it('fails with the read error for a spool that is not there, instead of crashing', async () => {
    const server = await endpoint();
    await assert.rejects(uploadSnapshot(join(scratch.root, 'no-such-spool.ndjson.gz'), options(server.url)), { code: 'ENOENT' });
    assert.equal(server.arrived, 0);
  });

  it('fails for a spool that is not gzip, and releases it', async () => {
    const server = await endpoint();
    const path = scratch.path('spool', '.ndjson.gz');
    await writeFile(path, 'not gzip\n'.repeat(100_000));
    await assert.rejects(uploadSnapshot(path, options(server.url)), { code: 'Z_DATA_ERROR' });
    assert.equal(server.arrived, 0);
    await until(() => !isOpen(path), 'the spool file to be closed');
  });
});

describe('uploadSnapshot: answers it cannot trust', () => {
  /**
   * Answers with `status` and a body that never ends (64 KiB blocks as fast as the socket takes
   * them, or one byte per 50 ms when `slow`); counts the body bytes that left the server.
   */
  async function endlessEndpoint(status: number, slow = false): Promise<Endpoint & { sent: () => number }> {
    let sent = 0;
    const block = Buffer.alloc(64 * 1024, 'x');
    const server = await endpoint((res) => {
      res.writeHead(status, { 'content-type': 'text/plain' });
      const pump = (): void => {
        if (res.destroyed || res.writableEnded) return;
        if (slow) {
          res.write('x');
          sent++;
          setTimeout(pump, 50);
          return;
        }
        while (!res.destroyed && res.write(block)) sent += block.length;
        if (!res.destroyed) {
          sent += block.length;
          res.once('drain', pump);
        }
      };
      res.on('close', () => res.destroy());
      pump();
    });
    return Object.assign(server, { sent: () => sent });
  }
  const MiB = 1024 * 1024;

  it('takes a 200 with an endless body as delivered at once, without reading the body', { timeout: 20_000 }, async () => {
    const server = await endlessEndpoint(200);
    const started = Date.now();
    const result = await uploadSnapshot(await spool([objectOfSize('a', 80)]), options(server.url, { timeoutMs: 10_000 }));
    assert.equal(result.chunks, 1);
    assert.ok(Date.now() - started < 3_000, `took ${Date.now() - started} ms: the body was waited for`);
    assert.ok(server.sent() < 16 * MiB, `${(server.sent() / MiB).toFixed(0)} MiB of the answer were read`);
  });

  it('reads only the start of an endless error body, and quotes at most 200 characters of it', { timeout: 20_000 }, async () => {
    const server = await endlessEndpoint(500);
    const started = Date.now();
    await assert.rejects(uploadSnapshot(await spool([objectOfSize('a', 80)]), options(server.url, { maxAttempts: 1, timeoutMs: 10_000 })), (err: unknown) => {
      assert.ok(err instanceof UploadError);
      assert.equal(err.status, 500);
      assert.match(err.message, /HTTP 500: x{200}…$/);
      return true;
    });
    assert.ok(Date.now() - started < 3_000, `took ${Date.now() - started} ms`);
    assert.ok(server.sent() < 16 * MiB, `${(server.sent() / MiB).toFixed(0)} MiB of the answer were read`);
  });

  it('ends an error answer whose body trickles in forever with the request timeout', { timeout: 20_000 }, async () => {
    const server = await endlessEndpoint(503, true);
    const started = Date.now();
    await assert.rejects(uploadSnapshot(await spool([objectOfSize('a', 80)]), options(server.url, { maxAttempts: 1, timeoutMs: 500 })), UploadError);
    assert.ok(Date.now() - started < 3_000, `took ${Date.now() - started} ms`);
  });

  it('keeps a timeout longer than Node timers can hold (700 h) instead of timing out at once', { timeout: 20_000 }, async () => {
    const server = await endpoint((res) => setTimeout(() => res.writeHead(204).end(), 100));
    const result = await uploadSnapshot(await spool([objectOfSize('a', 80)]), options(server.url, { maxAttempts: 1, timeoutMs: 700 * 3_600_000 }));
    assert.equal(result.chunks, 1);
  });
});

describe('uploadSnapshot: k8s-collector\'s login exchange', () => {
  const keys = { accessKey: 'ak-123', secretKey: 'sk-456' };
  const receivers: K8sCollectorReceiver[] = [];
  afterEach(async () => {
    for (const receiver of receivers.splice(0)) await receiver.stop();
  });
  /** A receiver on `clock` (token expiry) and a session logging in where the tool would. */
  async function setUp(init: { clock?: FakeClock; expiresInSeconds?: number; loginEndpoint?: boolean; session?: Partial<typeof keys> } = {}) {
    const clock = init.clock ?? new FakeClock();
    const receiver = await new K8sCollectorReceiver({ ...keys, now: () => clock.now(), ...(init.expiresInSeconds ? { expiresInSeconds: init.expiresInSeconds } : {}) }).start();
    receivers.push(receiver);
    const session = new LoginSession({ loginUrl: loginUrlFor(receiver.url, init.loginEndpoint ? receiver.loginUrl : undefined), ...keys, ...init.session });
    const upload = async (objects: readonly unknown[], overrides: Partial<EndpointOptions> = {}) =>
      uploadSnapshot(await spool(objects), options(receiver.url, { clock, session, ...overrides }));
    return { clock, receiver, session, upload };
  }
  const three = (): Record<string, unknown>[] => Array.from({ length: 3 }, (_, i) => objectOfSize(`cm-${i}`, 100));

  it('logs in at <endpoint>/sink/login with the keys and sends every chunk with the token, keys never with a chunk', async () => {
    const { receiver, upload } = await setUp();
    const result = await upload(three(), { chunkBytes: 150 });
    assert.equal(result.chunks, 3);
    assert.deepEqual(receiver.logins.map((l) => [l.at, l.status, l.body]), [['sink', 200, keys]]);
    assert.equal(receiver.logins[0]?.headers['content-type'], 'application/json');
    assert.equal(receiver.logins[0]?.headers['content-encoding'], undefined, 'the login body is plain JSON, as the tool sent it');
    assert.deepEqual(receiver.chunks.map((c) => c.objects.map((o) => (o['metadata'] as { name: string }).name)), [['cm-0'], ['cm-1'], ['cm-2']]);
    assert.equal(new Set(receiver.chunks.map((c) => c.token)).size, 1, 'one token for every chunk');
    for (const chunk of receiver.chunks) {
      assert.equal(chunk.headers['content-encoding'], 'gzip');
      const everything = JSON.stringify(chunk.headers) + chunk.text;
      assert.ok(!everything.includes('ak-123') && !everything.includes('sk-456'), 'a key travelled with a chunk');
    }
    assert.deepEqual(receiver.refused, []);
  });

  it('logs in at <loginEndpoint>/account/access_keys/login when one is set, and still sends to <endpoint>/sink/send', async () => {
    const { receiver, upload } = await setUp({ loginEndpoint: true });
    await upload(three());
    assert.deepEqual(receiver.logins.map((l) => [l.at, l.body]), [['account', keys]]);
    assert.equal(receiver.chunks.length, 1);
  });

  it('keeps the token for the next upload of the process (a kept snapshot, then the run\'s own) while it is valid', async () => {
    const { clock, receiver, session, upload } = await setUp({ expiresInSeconds: 3600 });
    await upload(three(), { chunkBytes: 150 });
    clock.advance(3000_000);
    await upload(three(), { chunkBytes: 150 });
    assert.equal(receiver.logins.length, 1);
    assert.equal(session.logins, 1);
    assert.equal(receiver.chunks.length, 6);
    assert.deepEqual(receiver.refused, []);
  });

  it('logs in again once the token\'s expires_in has (nearly) run out, before the endpoint would refuse it', async () => {
    const { clock, receiver, upload } = await setUp({ expiresInSeconds: 60 });
    await upload(three());
    clock.advance(53_000); // renewed a tenth of the lifetime early: at 54 s
    await upload(three());
    assert.equal(receiver.logins.length, 1, 'still valid at 53 s');
    clock.advance(2_000);
    await upload(three());
    assert.equal(receiver.logins.length, 2, 'renewed at 55 s');
    clock.advance(10 * 60_000);
    await upload(three());
    assert.equal(receiver.logins.length, 3);
    assert.deepEqual(receiver.refused, [], 'no request went out with an expired token');
    assert.equal(new Set(receiver.chunks.map((c) => c.token)).size, 3);
  });

  it('answers a 401 with one new login and sends the same chunk again', async () => {
    const { receiver, upload } = await setUp();
    await upload(three(), { chunkBytes: 150 });
    receiver.revokeTokens();
    const result = await upload(three(), { chunkBytes: 150 });
    assert.equal(result.chunks, 3);
    assert.equal(receiver.refused.length, 1);
    assert.equal(receiver.logins.length, 2);
    assert.deepEqual(receiver.chunks.slice(3).map((c) => c.objects.map((o) => (o['metadata'] as { name: string }).name)), [['cm-0'], ['cm-1'], ['cm-2']], 'every chunk once, the refused one again');
  });

  it('fails after a second 401 right after a fresh login, without logging in again and again', async () => {
    const { receiver, upload } = await setUp();
    receiver.acceptTokens = false;
    await assert.rejects(upload(three()), (err: unknown) => {
      assert.ok(err instanceof UploadError);
      assert.equal(err.status, 401);
      assert.match(err.message, /refused chunk 0: HTTP 401: \{"error":"invalid or expired token"\} \(refused a token fresh from the login/);
      return true;
    });
    assert.equal(receiver.logins.length, 2);
  });

  it('fails at once with a clear error when the login refuses the keys, sending nothing', async () => {
    const { receiver, upload } = await setUp({ session: { secretKey: 'wrong' } });
    await assert.rejects(upload(three(), { maxAttempts: 5 }), (err: unknown) => {
      assert.ok(err instanceof UploadError);
      assert.equal(err.message, `login at ${new URL(receiver.url).host} refused: HTTP 401: {"error":"invalid access or secret key"} (check the access and secret keys)`);
      assert.equal(err.status, 401);
      assert.equal(err.attempts, 1);
      return true;
    });
    assert.equal(receiver.logins.length, 1);
    assert.equal(receiver.chunks.length + receiver.refused.length, 0);
  });

  it('retries a login service that is down and fails with it after the attempts, sending nothing', async () => {
    const { clock, receiver, upload } = await setUp();
    receiver.loginUp = false;
    const retries: string[] = [];
    const stop = autoAdvance(clock);
    try {
      await assert.rejects(upload(three(), { maxAttempts: 3, onRetry: (info) => retries.push(info.reason) }), (err: unknown) => {
        assert.ok(err instanceof UploadError);
        assert.equal(err.message, `login at ${new URL(receiver.url).host} unreachable after 3 attempts: HTTP 503: {"error":"login service unavailable"}`);
        return true;
      });
    } finally {
      stop();
    }
    assert.equal(retries.length, 2);
    assert.equal(receiver.logins.length, 3);
    assert.equal(receiver.chunks.length, 0);
  });

  it('says so when a login answers 2xx without a token', async () => {
    const server = await endpoint((res) => res.writeHead(200, { 'content-type': 'application/json' }).end('{"token":"x"}'));
    const session = new LoginSession({ loginUrl: loginUrlFor(server.url), ...keys });
    await assert.rejects(uploadSnapshot(await spool([objectOfSize('a', 80)]), options(server.url, { session })), /^UploadError: login at 127\.0\.0\.1:\d+ answered 200 without an access_token$/);
    assert.deepEqual(server.paths, ['/v1/inventory/sink/login']);
  });

  for (const status of [200, 201, 202]) {
    it(`counts ${status} from the endpoint as delivered, like 204 (any 2xx)`, async () => {
      const { receiver, upload } = await setUp();
      receiver.sendStatus = status;
      const result = await upload(three(), { chunkBytes: 150 });
      assert.equal(result.chunks, 3);
      assert.equal(receiver.chunks.length, 3, 'each chunk once: none sent again');
    });
  }

  it('does not follow a redirect: a 3xx refuses the chunk', async () => {
    const { receiver, upload } = await setUp();
    receiver.sendStatus = 307;
    await assert.rejects(upload(three()), (err: unknown) => err instanceof UploadError && err.status === 307);
  });
});
