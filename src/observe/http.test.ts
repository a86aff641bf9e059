import assert from 'node:assert/strict';
import { after, describe, test } from 'node:test';
import { FakeClock } from '../kube/clock.ts';
import { parseBindAddress, startHealthServer, startMetricsServer, type RunningServer } from './http.ts';
import { createLogger } from './logger.ts';
import { createRegistry } from './metrics.ts';

/** A logger whose JSON lines land in `lines`. */
function capturingLogger() {
  const lines: Record<string, unknown>[] = [];
  const logger = createLogger({ destination: { write: (line: string) => void lines.push(JSON.parse(line)) } });
  return { logger, lines };
}

const LOOPBACK_EPHEMERAL = '127.0.0.1:0';

const running: RunningServer[] = [];
after(async () => {
  await Promise.all(running.map((server) => server.close()));
});

/** Starts a server through `start`, closing it after the suite even if a test fails. */
async function started<T extends RunningServer>(start: Promise<T | undefined>): Promise<T> {
  const server = await start;
  assert.ok(server, 'server should be enabled');
  running.push(server);
  return server;
}

function urlOf(server: RunningServer, path: string): string {
  return `http://127.0.0.1:${server.address.port}${path}`;
}

describe('parseBindAddress', () => {
  const valid: readonly [string, { host: string; port: number } | undefined][] = [
    [':8080', { host: '', port: 8080 }],
    ['127.0.0.1:8080', { host: '127.0.0.1', port: 8080 }],
    ['[::1]:9090', { host: '::1', port: 9090 }],
    ['localhost:0', { host: 'localhost', port: 0 }],
    [':0', { host: '', port: 0 }],
    ['0', undefined],
    ['', undefined],
  ];
  for (const [input, expected] of valid) {
    test(`"${input}" ${expected ? `binds ${expected.host || 'all interfaces'} port ${expected.port}` : 'disables the server'}`, () => {
      assert.deepEqual(parseBindAddress(input), expected);
    });
  }

  const invalid: readonly [string, RegExp][] = [
    ['8080', /must be host:port or :port/],
    [':http', /port must be a number/],
    [':65536', /port must be a number from 0 to 65535/],
    ['::1:8080', /put an IPv6 host in brackets/],
    ['127.0.0.1:', /port must be a number/],
  ];
  for (const [input, message] of invalid) {
    test(`"${input}" is rejected`, () => {
      assert.throws(() => parseBindAddress(input), message);
    });
  }
});

describe('metrics server', () => {
  test('GET /metrics answers in the Prometheus text format with the build info', async () => {
    const { logger } = capturingLogger();
    const server = await started(
      startMetricsServer({ bindAddress: LOOPBACK_EPHEMERAL, registry: createRegistry({ buildInfo: { version: '9.9.9', nodeVersion: 'v24.0.0' } }), logger }),
    );
    assert.notEqual(server.address.port, 0, 'port 0 is replaced by the port the OS picked');
    assert.equal(server.address.host, '127.0.0.1');

    const response = await fetch(urlOf(server, '/metrics'));
    assert.equal(response.status, 200);
    assert.match(response.headers.get('content-type') ?? '', /^text\/plain; version=0\.0\.4/);
    const body = await response.text();
    assert.match(body, /^crowsnest_build_info\{version="9\.9\.9",node_version="v24\.0\.0"\} 1$/m);
    assert.match(body, /^process_cpu_user_seconds_total /m);
  });

  test('other paths are 404 and other methods 405', async () => {
    const { logger } = capturingLogger();
    const server = await started(startMetricsServer({ bindAddress: LOOPBACK_EPHEMERAL, registry: createRegistry(), logger }));
    assert.equal((await fetch(urlOf(server, '/'))).status, 404);
    const post = await fetch(urlOf(server, '/metrics'), { method: 'POST' });
    assert.equal(post.status, 405);
    assert.equal(post.headers.get('allow'), 'GET, HEAD');
  });

  test('"0" disables the server and says so in the log', async () => {
    const { logger, lines } = capturingLogger();
    assert.equal(await startMetricsServer({ bindAddress: '0', registry: createRegistry(), logger }), undefined);
    assert.equal(lines.at(-1)?.['msg'], 'metrics server disabled');
  });

  test('a port already in use is an error naming the server and the address', async () => {
    const { logger } = capturingLogger();
    const first = await started(startMetricsServer({ bindAddress: LOOPBACK_EPHEMERAL, registry: createRegistry(), logger }));
    await assert.rejects(
      startMetricsServer({ bindAddress: `127.0.0.1:${first.address.port}`, registry: createRegistry(), logger }),
      new RegExp(`cannot serve metrics on 127\\.0\\.0\\.1:${first.address.port}: EADDRINUSE`),
    );
  });

  test('close() returns while a client still holds a keep-alive connection', async () => {
    const { logger } = capturingLogger();
    const server = await startMetricsServer({ bindAddress: LOOPBACK_EPHEMERAL, registry: createRegistry(), logger });
    assert.ok(server);
    await (await fetch(urlOf(server, '/metrics'))).text();
    await server.close();
    await assert.rejects(fetch(urlOf(server, '/metrics')));
  });
});

describe('health server', () => {
  const passing = (name: string) => ({ name, check: () => {} });
  const failing = (name: string, message = 'not synced') => ({
    name,
    check: async () => {
      throw new Error(message);
    },
  });

  test('with no checks both probes answer 200 ok', async () => {
    const server = await started(startHealthServer({ bindAddress: LOOPBACK_EPHEMERAL }));
    for (const path of ['/healthz', '/readyz']) {
      const response = await fetch(urlOf(server, path));
      assert.equal(response.status, 200);
      assert.equal(await response.text(), 'ok');
    }
  });

  test('a failing readiness check fails /readyz only, listing just the failing check', async () => {
    const server = await started(
      startHealthServer({
        bindAddress: LOOPBACK_EPHEMERAL,
        checks: { liveness: [passing('ping')], readiness: [passing('leader'), failing('informers-synced')] },
      }),
    );
    const ready = await fetch(urlOf(server, '/readyz'));
    assert.equal(ready.status, 500);
    assert.equal(await ready.text(), '[-]informers-synced failed: reason withheld\nreadyz check failed\n');

    const live = await fetch(urlOf(server, '/healthz'));
    assert.equal(live.status, 200);
    assert.equal(await live.text(), 'ok');
  });

  test('?verbose lists every check, passing or failing', async () => {
    const server = await started(
      startHealthServer({
        bindAddress: LOOPBACK_EPHEMERAL,
        checks: { liveness: [passing('ping'), passing('watchdog')], readiness: [passing('leader'), failing('informers-synced')] },
      }),
    );
    const live = await fetch(urlOf(server, '/healthz?verbose'));
    assert.equal(live.status, 200);
    assert.equal(await live.text(), '[+]ping ok\n[+]watchdog ok\nhealthz check passed\n');

    const ready = await fetch(urlOf(server, '/readyz?verbose=1'));
    assert.equal(ready.status, 500);
    assert.equal(await ready.text(), '[+]leader ok\n[-]informers-synced failed: reason withheld\nreadyz check failed\n');
  });

  test('the failure reason goes to the log, not to the response', async () => {
    const { logger, lines } = capturingLogger();
    const server = await started(
      startHealthServer({ bindAddress: LOOPBACK_EPHEMERAL, logger, checks: { liveness: [failing('etcd', 'secret detail')] } }),
    );
    const response = await fetch(urlOf(server, '/healthz'));
    assert.doesNotMatch(await response.text(), /secret detail/);
    const logged = lines.find((line) => line['msg'] === 'health check failed');
    assert.equal(logged?.['check'], 'etcd');
    assert.equal(logged?.['reason'], 'secret detail');
  });

  test('a check that throws synchronously fails like one that rejects', async () => {
    const throwing = {
      name: 'sync',
      check: () => {
        throw new Error('nope');
      },
    };
    const server = await started(startHealthServer({ bindAddress: LOOPBACK_EPHEMERAL, checks: { liveness: [throwing] } }));
    assert.equal((await fetch(urlOf(server, '/healthz'))).status, 500);
  });

  test('a check that hangs fails once the check timeout passes', async () => {
    const clock = new FakeClock();
    let started_: () => void = () => {};
    const checkStarted = new Promise<void>((resolve) => {
      started_ = resolve;
    });
    const hanging = {
      name: 'hangs',
      check: () => {
        started_();
        return new Promise<void>(() => {});
      },
    };
    const server = await started(
      startHealthServer({ bindAddress: LOOPBACK_EPHEMERAL, clock, checkTimeoutMs: 1_000, checks: { readiness: [hanging] } }),
    );
    const pending = fetch(urlOf(server, '/readyz'));
    await checkStarted;
    clock.advance(999);
    clock.advance(1);
    const response = await pending;
    assert.equal(response.status, 500);
    assert.equal(await response.text(), '[-]hangs failed: reason withheld\nreadyz check failed\n');
    assert.equal(clock.pendingTimers, 0);
  });

  test('checks added after start take part in the next probe', async () => {
    const server = await started(startHealthServer({ bindAddress: LOOPBACK_EPHEMERAL }));
    assert.equal((await fetch(urlOf(server, '/readyz'))).status, 200);
    server.addCheck('readiness', failing('leader'));
    assert.equal((await fetch(urlOf(server, '/readyz'))).status, 500);
    assert.equal((await fetch(urlOf(server, '/healthz'))).status, 200);
  });

  test('two checks of one kind cannot share a name', async () => {
    const server = await started(startHealthServer({ bindAddress: LOOPBACK_EPHEMERAL, checks: { liveness: [passing('ping')] } }));
    assert.throws(() => server.addCheck('liveness', passing('ping')), /duplicate liveness check "ping"/);
    server.addCheck('readiness', passing('ping'));
  });

  test('unknown paths are 404; HEAD answers without a body', async () => {
    const server = await started(startHealthServer({ bindAddress: LOOPBACK_EPHEMERAL }));
    assert.equal((await fetch(urlOf(server, '/livez'))).status, 404);
    const head = await fetch(urlOf(server, '/healthz'), { method: 'HEAD' });
    assert.equal(head.status, 200);
    assert.equal(await head.text(), '');
  });

  test('"" disables the server', async () => {
    assert.equal(await startHealthServer({ bindAddress: '' }), undefined);
  });
});
