import assert from 'node:assert/strict';
import { once } from 'node:events';
import { createServer as createNodeHttpServer } from 'node:http';
import { createServer, type AddressInfo, type Server } from 'node:net';
import { after, describe, it } from 'node:test';
import type { Peer } from '../contract.ts';
import { createHttpServer } from '../../observe/lean/http.ts';
import { failureReason, PeerProber } from './probe.ts';

async function listen(server: Server): Promise<number> {
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  return (server.address() as AddressInfo).port;
}

const peer = (port: number): Peer => ({ name: 'web-1', uid: 'uid-1', ip: '127.0.0.1', node: 'n', port });

/** A port nothing listens on (bound, then closed). */
async function closedPort(): Promise<number> {
  const server = createServer();
  const port = await listen(server);
  server.close();
  await once(server, 'close');
  return port;
}

describe('PeerProber', () => {
  const prober = new PeerProber();
  after(() => prober.close());
  let connections = 0;
  const agent = createHttpServer((request) => (request.path === '/ping' ? { status: 200, body: 'pong' } : { status: 404 }));
  agent.on('connection', () => connections++);
  const agentPort = listen(agent);
  after(() => agent.close());

  it('measures GET /ping on one kept-alive connection, and TCP connects on new ones', async () => {
    const target = peer(await agentPort);
    const before = connections;
    for (let i = 0; i < 5; i++) {
      const outcome = await prober.http(target, 1000);
      assert.ok(outcome.ok, JSON.stringify(outcome));
      assert.ok(outcome.rttSeconds > 0 && outcome.rttSeconds < 0.5, String(outcome.rttSeconds));
    }
    assert.equal(connections - before, 1, 'five pings, one connection');
    const tcp = await prober.tcp(target, 1000);
    assert.ok(tcp.ok && tcp.rttSeconds > 0 && tcp.rttSeconds < 0.5);
    assert.equal(connections - before, 2, 'the TCP probe opened its own connection');
  });

  it('is refused where nothing listens, both ways', async () => {
    const target = peer(await closedPort());
    const http = await prober.http(target, 1000);
    assert.equal(!http.ok && http.reason, 'refused');
    const tcp = await prober.tcp(target, 1000);
    assert.equal(!tcp.ok && tcp.reason, 'refused');
  });

  it('times out a peer that accepts but never answers, within the timeout', async () => {
    const silent = createServer(() => {});
    const target = peer(await listen(silent));
    try {
      const started = performance.now();
      const outcome = await prober.http(target, 200);
      const took = performance.now() - started;
      assert.equal(!outcome.ok && outcome.reason, 'timeout');
      assert.ok(took >= 195 && took < 600, `${took} ms`);
    } finally {
      silent.close();
    }
  });

  it('tells a non-200 answer, a non-HTTP answer and a reset apart', async () => {
    const failing = createHttpServer(() => ({ status: 503, body: 'busy' }));
    const garbage = createServer((socket) => socket.on('data', () => socket.write('SSH-2.0-OpenSSH_9.2\r\n\r\n')));
    const resetting = createServer((socket) => socket.on('data', () => socket.resetAndDestroy()));
    try {
      const status = await prober.http(peer(await listen(failing)), 1000);
      assert.deepEqual(status, { ok: false, reason: 'http_status', detail: 'GET /ping answered 503' });
      const protocol = await prober.http(peer(await listen(garbage)), 1000);
      assert.equal(!protocol.ok && protocol.reason, 'protocol');
      const reset = await prober.http(peer(await listen(resetting)), 1000);
      assert.equal(!reset.ok && reset.reason, 'reset');
    } finally {
      failing.close();
      garbage.close();
      resetting.close();
    }
  });

  it('does not count a peer closing an idle kept-alive connection as a failure', async () => {
    const server = createNodeHttpServer((_req, res) => res.writeHead(200, { 'content-length': 4 }).end('pong'));
    server.keepAliveTimeout = 50;
    const target = peer(await listen(server));
    try {
      assert.ok((await prober.http(target, 1000)).ok);
      await new Promise((resolve) => setTimeout(resolve, 200));
      const outcome = await prober.http(target, 1000);
      assert.ok(outcome.ok, JSON.stringify(outcome));
    } finally {
      server.close();
    }
  });
});

describe('failureReason', () => {
  it('maps socket error codes to reasons', () => {
    const table: Array<[string, string]> = [['ECONNREFUSED', 'refused'], ['ECONNRESET', 'reset'], ['EPIPE', 'reset'], ['EHOSTUNREACH', 'unreachable'], ['ENETUNREACH', 'unreachable'], ['ETIMEDOUT', 'timeout'], ['EMFILE', 'other']];
    for (const [code, reason] of table) assert.equal(failureReason(Object.assign(new Error(code), { code })), reason, code);
  });
});
