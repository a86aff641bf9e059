import assert from 'node:assert/strict';
import { once } from 'node:events';
import { createServer as createNodeHttpServer, request as nodeRequest, Agent } from 'node:http';
import { connect, type AddressInfo, type Server } from 'node:net';
import { after, describe, it } from 'node:test';
import { ConnectionClosedError, createHttpServer, HttpConnection, HttpProtocolError, type HttpRequest } from './http.ts';

async function listen(server: Server): Promise<number> {
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  return (server.address() as AddressInfo).port;
}

async function open(port: number): Promise<HttpConnection> {
  const socket = connect({ port, host: '127.0.0.1' });
  await once(socket, 'connect');
  return new HttpConnection(socket);
}

/** Writes raw bytes and collects everything the server sends until it closes or `ms` pass. */
async function raw(port: number, bytes: string, ms = 300): Promise<string> {
  const socket = connect({ port, host: '127.0.0.1' });
  let text = '';
  socket.on('data', (chunk: Buffer) => { text += chunk.toString('latin1'); });
  socket.write(bytes);
  await Promise.race([once(socket, 'close'), new Promise((resolve) => setTimeout(resolve, ms))]);
  socket.destroy();
  return text;
}

describe('agent HTTP server', () => {
  const seen: HttpRequest[] = [];
  const server = createHttpServer((request) => {
    seen.push(request);
    if (request.path === '/ping') return { status: 200, body: 'pong' };
    if (request.path === '/throw') throw new Error('boom');
    return { status: 404, body: 'no\n' };
  });
  const port = listen(server);
  after(() => server.close());

  it('answers Node\'s own HTTP client, keeping the connection alive between requests', async () => {
    const agent = new Agent({ keepAlive: true, maxSockets: 1 });
    const p = await port;
    const requestAt = (path: string) => new Promise<{ status: number; body: string; socket: unknown }>((resolve, reject) => {
      const req = nodeRequest({ host: '127.0.0.1', port: p, agent, path, method: 'GET' }, (res) => {
        let body = '';
        res.on('data', (c: Buffer) => { body += c.toString(); });
        res.on('end', () => resolve({ status: res.statusCode!, body, socket: req.socket }));
      });
      req.on('error', reject);
      req.end();
    });
    const first = await requestAt('/ping?x=1');
    const second = await requestAt('/nothing');
    assert.deepEqual([first.status, first.body], [200, 'pong']);
    assert.deepEqual([second.status, second.body], [404, 'no\n']);
    assert.equal(first.socket, second.socket, 'one kept-alive connection');
    assert.equal(seen.find((r) => r.path === '/ping')?.headers.get('host'), `127.0.0.1:${p}`);
    agent.destroy();
  });

  it('answers fetch (undici)', async () => {
    const res = await fetch(`http://127.0.0.1:${await port}/ping`);
    assert.equal(res.status, 200);
    assert.equal(res.headers.get('content-length'), '4');
    assert.equal(await res.text(), 'pong');
  });

  it('answers pipelined requests in order, HEAD without a body, and closes after Connection: close', async () => {
    const text = await raw(await port, 'GET /ping HTTP/1.1\r\nHost: x\r\n\r\nHEAD /ping HTTP/1.1\r\nHost: x\r\n\r\nGET /nope HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n');
    const responses = text.split(/(?=HTTP\/1\.1 )/);
    assert.equal(responses.length, 3, text);
    assert.match(responses[0]!, /^HTTP\/1\.1 200 OK\r\n[\s\S]*Content-Length: 4\r\n\r\npong$/);
    assert.match(responses[1]!, /^HTTP\/1\.1 200 OK\r\n[\s\S]*Content-Length: 4\r\n\r\n$/, 'HEAD: length, no body');
    assert.match(responses[2]!, /^HTTP\/1\.1 404 Not Found\r\n[\s\S]*Connection: close\r\n\r\nno\n$/);
  });

  it('keeps HTTP/1.0 connections only when asked to', async () => {
    assert.match(await raw(await port, 'GET /ping HTTP/1.0\r\n\r\n'), /Connection: close/);
    assert.doesNotMatch(await raw(await port, 'GET /ping HTTP/1.0\r\nConnection: keep-alive\r\n\r\n'), /Connection: close/);
  });

  it('refuses bodies, other methods, malformed and oversized heads, and survives a throwing handler', async () => {
    const p = await port;
    assert.match(await raw(p, 'POST /ping HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\n\r\nabc'), /^HTTP\/1\.1 400 [\s\S]*Connection: close[\s\S]*bodies are not accepted/);
    assert.match(await raw(p, 'DELETE /ping HTTP/1.1\r\nHost: x\r\n\r\n'), /^HTTP\/1\.1 405 /);
    assert.match(await raw(p, 'GARBAGE\r\n\r\n'), /^HTTP\/1\.1 400 /);
    assert.match(await raw(p, `GET /ping HTTP/1.1\r\nX-Big: ${'a'.repeat(9000)}\r\n\r\n`), /^HTTP\/1\.1 431 /);
    assert.match(await raw(p, `GET /ping HTTP/1.1\r\nX-Big: ${'a'.repeat(9000)}`), /^HTTP\/1\.1 431 /, 'before the head even ends');
    assert.match(await raw(p, 'GET /throw HTTP/1.1\r\nHost: x\r\n\r\n'), /^HTTP\/1\.1 500 /);
    assert.equal((await fetch(`http://127.0.0.1:${p}/ping`)).status, 200, 'still serving');
  });
});

describe('agent HTTP client connection', () => {
  const server = createNodeHttpServer((req, res) => {
    if (req.url === '/ping') return res.writeHead(200, { 'content-length': 4 }).end('pong');
    if (req.url === '/echo') {
      let body = '';
      req.on('data', (c: Buffer) => { body += c.toString(); });
      req.on('end', () => res.writeHead(200, { 'content-length': Buffer.byteLength(body), 'x-auth': req.headers.authorization ?? '' }).end(body));
      return;
    }
    if (req.url === '/chunked') {
      res.write('chunked, ');
      return res.end('no length');
    }
    if (req.url === '/empty') return res.writeHead(204).end();
    return res.writeHead(404, { 'content-length': 0 }).end();
  });
  server.keepAliveTimeout = 200;
  const port = listen(server);
  after(() => server.close());

  it('sends requests one after another on one connection, with headers and a body', async () => {
    const connection = await open(await port);
    const ping = await connection.request({ method: 'GET', path: '/ping', host: 'peer' });
    assert.equal(ping.status, 200);
    assert.equal(ping.body.toString(), 'pong');
    const echo = await connection.request({ method: 'POST', path: '/echo', host: 'peer', headers: { Authorization: 'Bearer t' }, body: '{"a":1}' });
    assert.equal(echo.body.toString(), '{"a":1}');
    assert.equal(echo.headers.get('x-auth'), 'Bearer t');
    assert.equal((await connection.request({ method: 'GET', path: '/empty', host: 'peer' })).status, 204);
    assert.equal((await connection.request({ method: 'GET', path: '/missing', host: 'peer' })).status, 404);
    assert.ok(connection.usable);
    connection.close();
  });

  it('fails a response without a Content-Length as a protocol error and closes', async () => {
    const connection = await open(await port);
    await assert.rejects(connection.request({ method: 'GET', path: '/chunked', host: 'peer' }), HttpProtocolError);
    assert.equal(connection.usable, false);
  });

  it('reports a kept-alive connection the server closed as closed before the response', async () => {
    const connection = await open(await port);
    await connection.request({ method: 'GET', path: '/ping', host: 'peer' });
    await once(connection.socket, 'close'); // the server's keep-alive timeout (200 ms)
    const error = await connection.request({ method: 'GET', path: '/ping', host: 'peer' }).catch((e: unknown) => e);
    assert.ok(error instanceof ConnectionClosedError);
    assert.equal(error.beforeResponse, true);
  });
});
