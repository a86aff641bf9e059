import assert from 'node:assert/strict';
import { once } from 'node:events';
import { createServer as createHttpServer, type Server as HttpServer } from 'node:http';
import { type AddressInfo, createServer, type Server, type Socket } from 'node:net';
import { after, describe, it } from 'node:test';
import { PortProber } from './probe.ts';

const servers: Array<Server | HttpServer> = [];
const sockets = new Set<Socket>();

async function serve<S extends Server | HttpServer>(server: S): Promise<number> {
  servers.push(server);
  server.on('connection', (socket: Socket) => {
    sockets.add(socket);
    socket.on('close', () => sockets.delete(socket));
    socket.on('error', () => {});
  });
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  return (server.address() as AddressInfo).port;
}

/** An HTTP server answering `status` with a chunked body (no Content-Length). */
function httpServer(status: () => number): HttpServer {
  return createHttpServer((_req, res) => {
    res.writeHead(status(), { 'content-type': 'text/plain' });
    res.write('chunk one\n');
    res.end('chunk two\n');
  });
}

async function freePort(): Promise<number> {
  const server = createServer();
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  const { port } = server.address() as AddressInfo;
  await new Promise((resolve) => server.close(resolve));
  return port;
}

after(() => {
  for (const socket of sockets) socket.destroy();
  for (const server of servers) server.close();
});

describe('PortProber', () => {
  it('finds out that a port speaks HTTP and probes it by GET from then on, healthy below 500', async () => {
    let status = 404;
    const port = await serve(httpServer(() => status));
    const prober = new PortProber('127.0.0.1', port);
    assert.equal(prober.kind, 'unknown');
    const first = await prober.probe(1_000);
    assert.deepEqual({ ok: first.ok, method: first.method }, { ok: true, method: 'http' });
    assert.equal(prober.kind, 'http');
    status = 503;
    const failing = await prober.probe(1_000);
    assert.equal(failing.ok, false);
    assert.deepEqual(failing.ok ? undefined : { method: failing.method, reason: failing.reason, detail: failing.detail }, { method: 'http', reason: 'http_status', detail: 'GET / answered 503' });
    status = 200;
    assert.equal((await prober.probe(1_000)).ok, true);
  });

  it('takes a port that answers something else for a TCP service and probes it by connect', async () => {
    const port = await serve(createServer((socket) => socket.end('SSH-2.0-OpenSSH_9.2\r\n')));
    const prober = new PortProber('127.0.0.1', port);
    const first = await prober.probe(1_000);
    assert.deepEqual({ ok: first.ok, method: first.method }, { ok: true, method: 'tcp' });
    assert.equal(prober.kind, 'tcp');
    const second = await prober.probe(1_000);
    assert.deepEqual({ ok: second.ok, method: second.method }, { ok: true, method: 'tcp' });
  });

  it('takes a port that stays silent after a request (a server waiting for its own protocol) for TCP, within the timeout', async () => {
    const port = await serve(createServer(() => {}));
    const prober = new PortProber('127.0.0.1', port);
    const started = performance.now();
    const outcome = await prober.probe(200);
    assert.ok(performance.now() - started < 1_000);
    assert.deepEqual({ ok: outcome.ok, method: outcome.method }, { ok: true, method: 'tcp' });
  });

  it('says refused when nothing listens, by TCP while the port was never reached', async () => {
    const prober = new PortProber('127.0.0.1', await freePort());
    const outcome = await prober.probe(1_000);
    assert.deepEqual(outcome.ok ? undefined : { method: outcome.method, reason: outcome.reason }, { method: 'tcp', reason: 'refused' });
    assert.equal(prober.kind, 'unknown');
  });

  it('fails an HTTP port that hangs with timeout, and keeps it HTTP (a hung server does not pass as a TCP service)', async () => {
    let hang = false;
    const port = await serve(createHttpServer((_req, res) => {
      if (!hang) res.end('ok');
    }));
    const prober = new PortProber('127.0.0.1', port);
    assert.equal((await prober.probe(1_000)).method, 'http');
    hang = true;
    for (let i = 0; i < 2; i++) {
      const started = performance.now();
      const outcome = await prober.probe(150);
      assert.ok(performance.now() - started < 1_000, 'the deadline holds');
      assert.deepEqual(outcome.ok ? undefined : { method: outcome.method, reason: outcome.reason }, { method: 'http', reason: 'timeout' });
      assert.equal(prober.kind, 'http');
    }
  });

  it('fails an HTTP port whose server closes without answering with reset, and one that now speaks something else with protocol, then finds it out anew', async () => {
    let mode: 'http' | 'close' | 'other' = 'http';
    const port = await serve(createServer((socket) => {
      socket.once('data', () => {
        if (mode === 'http') socket.end('HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n');
        else if (mode === 'close') socket.end();
        else socket.end('+OK redis\r\n');
      });
    }));
    const prober = new PortProber('127.0.0.1', port);
    assert.equal((await prober.probe(1_000)).method, 'http');
    mode = 'close';
    const closed = await prober.probe(1_000);
    assert.deepEqual(closed.ok ? undefined : { method: closed.method, reason: closed.reason }, { method: 'http', reason: 'reset' });
    mode = 'other';
    const other = await prober.probe(1_000);
    assert.deepEqual(other.ok ? undefined : { method: other.method, reason: other.reason }, { method: 'http', reason: 'protocol' });
    assert.equal(prober.kind, 'unknown');
    const again = await prober.probe(1_000);
    assert.deepEqual({ ok: again.ok, method: again.method }, { ok: true, method: 'tcp' });
  });

  it('reads only the status line: a large answer costs nothing', async () => {
    const port = await serve(createHttpServer((_req, res) => {
      res.writeHead(200, { 'content-length': 64 * 1024 * 1024 });
      res.write(Buffer.alloc(1024 * 1024));
      // Never finished: the probe must not wait for the body.
    }));
    const outcome = await new PortProber('127.0.0.1', port).probe(1_000);
    assert.deepEqual({ ok: outcome.ok, method: outcome.method }, { ok: true, method: 'http' });
  });
});
