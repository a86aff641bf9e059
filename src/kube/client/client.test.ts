import { KubeConfig } from '@kubernetes/client-node';
import assert from 'node:assert/strict';
import { once } from 'node:events';
import { createServer as createHttpServer } from 'node:http';
import { createServer, type AddressInfo, type Server, type Socket } from 'node:net';
import { afterEach, describe, it } from 'node:test';
import { KubeClient, KubeConnectionError } from './client.ts';
import { describeError, isNetworkError } from './errors.ts';

const cleanups: (() => Promise<void> | void)[] = [];
afterEach(async () => {
  for (const cleanup of cleanups.splice(0).reverse()) await cleanup();
});

function clientFor(server: string, options: { connectTimeoutMs?: number } = {}): KubeClient {
  const kc = new KubeConfig();
  kc.loadFromOptions({
    // client-node refuses http:// servers unless TLS verification is off (there is no TLS to verify).
    clusters: [{ name: 'c', server, ...(server.startsWith('http:') ? { skipTLSVerify: true } : {}) }],
    users: [{ name: 'u', token: 't' }],
    contexts: [{ name: 'x', cluster: 'c', user: 'u' }],
    currentContext: 'x',
  });
  const client = new KubeClient(kc, options);
  // Not awaited: closing waits for a connection attempt to a silent server to time out (10 s).
  cleanups.push(() => void client.close().catch(() => {}));
  return client;
}

async function listen(server: Server): Promise<number> {
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  const sockets = new Set<Socket>();
  server.on('connection', (socket: Socket) => sockets.add(socket));
  cleanups.push(async () => {
    for (const socket of sockets) socket.destroy();
    server.close();
  });
  return (server.address() as AddressInfo).port;
}

/** Asserts `promise` rejects with a KubeConnectionError whose message is exactly `message`. */
async function failsWith(promise: Promise<unknown>, message: string | RegExp, networkError: boolean): Promise<void> {
  await assert.rejects(promise, (err: unknown) => {
    assert.ok(err instanceof KubeConnectionError, String(err));
    if (typeof message === 'string') assert.equal(err.message, message);
    else assert.match(err.message, message);
    assert.equal(describeError(err), err.message, 'logs and summaries say the same');
    assert.equal(isNetworkError(err), networkError, 'worth retrying');
    return true;
  });
}

describe('KubeClient: an API server it cannot reach is named, with the cause', () => {
  it('connection refused', async () => {
    const port = await listen(createServer());
    cleanups.pop()!(); // closed again: connecting is refused
    await failsWith(clientFor(`https://127.0.0.1:${port}`).json('/version'), `API server 127.0.0.1:${port}: connection refused (ECONNREFUSED): nothing listens there, or the server is down`, true);
  });

  it('no answer within the request timeout (a stopped server, a black-holed path)', async () => {
    const port = await listen(createServer(() => {})); // accepts, never speaks TLS
    await failsWith(clientFor(`https://127.0.0.1:${port}`).json('/version', { timeoutMs: 300 }), `API server 127.0.0.1:${port}: no answer within 300ms (the server or the network path to it is stuck)`, true);
  });

  it('a connection attempt bounded by connectTimeoutMs ends then, before a longer request timeout and undici\'s 10 s (a CLI is not held open by it)', async () => {
    const port = await listen(createServer(() => {})); // accepts, never speaks TLS
    await failsWith(clientFor(`https://127.0.0.1:${port}`, { connectTimeoutMs: 200 }).json('/version', { timeoutMs: 5_000 }), `API server 127.0.0.1:${port}: connection timed out (UND_ERR_CONNECT_TIMEOUT): the server does not answer, or a firewall drops the packets`, true);
  });

  it('a TLS handshake that fails (plain HTTP where HTTPS was expected)', async () => {
    const port = await listen(createHttpServer((_req, res) => res.end('hello')));
    await failsWith(clientFor(`https://127.0.0.1:${port}`).json('/version'), new RegExp(`^API server 127\\.0\\.0\\.1:${port}: TLS handshake failed: .*\\((ERR_SSL|EPROTO)[A-Z_]*\\); check the cluster's certificate-authority and server name$`), false);
  });

  it('a connection reset in the middle of the answer', async () => {
    const port = await listen(createHttpServer((_req, res) => {
      res.writeHead(200, { 'content-type': 'application/json', 'content-length': '1000' });
      res.write('{"kind":');
      setTimeout(() => res.socket?.destroy(), 20);
    }));
    await failsWith(clientFor(`http://127.0.0.1:${port}`).json('/api/v1/pods'), new RegExp(`^API server 127\\.0\\.0\\.1:${port}: `), true);
  });

  it('leaves the caller\'s own cancellation as it was', async () => {
    const port = await listen(createServer(() => {}));
    const controller = new AbortController();
    const request = clientFor(`https://127.0.0.1:${port}`).json('/version', { signal: controller.signal });
    controller.abort();
    await assert.rejects(request, (err: unknown) => !(err instanceof KubeConnectionError));
  });

  it('keeps a request timeout longer than Node timers can hold (700 h) instead of timing out at once', async () => {
    const port = await listen(createHttpServer((_req, res) => setTimeout(() => res.writeHead(200, { 'content-type': 'application/json' }).end('{"ok":true}'), 100)));
    assert.deepEqual(await clientFor(`http://127.0.0.1:${port}`).json('/version', { timeoutMs: 700 * 3_600_000 }), { ok: true });
  });
});
