import assert from 'node:assert/strict';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { after, before, describe, it } from 'node:test';
import { useScratchDir } from '../../../test/helpers/scratch.ts';
import type { AccessDecision, ResourceAttributes } from '../../kube/auth/subject-access-review.ts';
import { silentLogger } from '../../kube/logger-type.ts';
import { criRecord, FakeContainerLog } from './fake-pod-logs.ts';
import { logApiHandler } from './log-api.ts';

const scratch = useScratchDir('guard-log-api-');

describe('the log API', () => {
  let server: Server;
  let base = '';
  const asked: ResourceAttributes[] = [];
  const access = {
    check: async (token: string, attributes: ResourceAttributes): Promise<AccessDecision> => {
      asked.push(attributes);
      if (token === 'down') throw new Error('API server unreachable');
      if (token === 'admin' || (token === 'reader' && attributes.name === 'web-0')) return { allowed: true, user: { username: 'alice', groups: [], extra: {} } };
      if (token === 'reader' || token === 'stranger') return { allowed: false, status: 403, reason: `${token} may not get pods/log ${attributes.name} in namespace ${attributes.namespace}` };
      return { allowed: false, status: 401, reason: 'the token is not valid for this cluster' };
    },
  };

  before(async () => {
    const root = await scratch.fresh();
    const app = await new FakeContainerLog(root, 'shop', 'web-0', 'uid-0', 'app').create();
    await app.lines(3);
    await app.write(criRecord('joined ', { partial: true }), criRecord('line'));
    const rotated = await app.rotate();
    await app.compress(rotated);
    await app.lines(2, { from: 3 });
    await app.restart();
    await app.lines(2, { from: 100 });
    await new FakeContainerLog(root, 'shop', 'web-1', 'uid-1', 'a').create();
    await new FakeContainerLog(root, 'shop', 'web-1', 'uid-1', 'b').create();
    server = createServer(logApiHandler({ podLogsDir: root, node: 'node-a', access, logger: silentLogger }));
    server.listen(0, '127.0.0.1');
    await new Promise((resolve) => server.once('listening', resolve));
    base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  });
  after(() => new Promise<void>((resolve) => server.close(() => resolve())));

  const get = async (path: string, token?: string) => {
    const res = await fetch(`${base}${path}`, { headers: token ? { authorization: `Bearer ${token}` } : {} });
    return { status: res.status, body: await res.text() };
  };

  it('serves the current run\'s lines to a caller allowed get pods/log on that pod, asking exactly that', async () => {
    asked.length = 0;
    assert.deepEqual(await get('/v1/namespaces/shop/pods/web-0/log', 'reader'), { status: 200, body: 'line 100\nline 101\n' });
    assert.deepEqual(asked, [{ namespace: 'shop', verb: 'get', resource: 'pods', subresource: 'log', name: 'web-0' }]);
  });

  it('serves the previous run through rotated and compressed files, partial lines joined, and its tail', async () => {
    assert.deepEqual(await get('/v1/namespaces/shop/pods/web-0/log?previous=true', 'reader'), { status: 200, body: 'line 0\nline 1\nline 2\njoined line\nline 3\nline 4\n' });
    assert.deepEqual(await get('/v1/namespaces/shop/pods/web-0/log?previous=true&tailLines=2', 'reader'), { status: 200, body: 'line 3\nline 4\n' });
  });

  it('refuses without a token (401), a token the cluster does not know (401), a user without the permission (403)', async () => {
    assert.equal((await get('/v1/namespaces/shop/pods/web-0/log')).status, 401);
    assert.equal((await get('/v1/namespaces/shop/pods/web-0/log', 'forged')).status, 401);
    assert.deepEqual(await get('/v1/namespaces/shop/pods/web-0/log', 'stranger'), { status: 403, body: 'stranger may not get pods/log web-0 in namespace shop\n' });
    assert.equal((await get('/v1/namespaces/shop/pods/web-1/log?container=a', 'reader')).status, 403, 'allowed for web-0 is not allowed for web-1');
  });

  it('answers 503, not the log, when the API server cannot be asked', async () => {
    assert.equal((await get('/v1/namespaces/shop/pods/web-0/log', 'down')).status, 503);
  });

  it('asks before it tells whether a pod has logs here', async () => {
    assert.equal((await get('/v1/namespaces/shop/pods/absent/log', 'stranger')).status, 403);
    asked.length = 0;
    const absent = await get('/v1/namespaces/other/pods/absent/log', 'forged');
    assert.equal(absent.status, 401);
  });

  it('needs a container name when the pod has several, and rejects malformed paths and values', async () => {
    assert.deepEqual(await get('/v1/namespaces/shop/pods/web-1/log', 'admin'), { status: 400, body: 'a container name must be given for pod shop/web-1, one of: a, b\n' });
    assert.equal((await get('/v1/namespaces/shop/pods/web-1/log?container=c', 'admin')).status, 404);
    assert.deepEqual(await get('/v1/namespaces/shop/pods/web-1/log?container=a', 'admin'), { status: 200, body: '' });
    assert.equal((await get('/v1/namespaces/shop/pods/elsewhere/log', 'admin')).status, 404);
    assert.equal((await get('/v1/namespaces/shop/pods/../log', 'reader')).status, 404);
    assert.equal((await get('/v1/namespaces/shop/pods/web-0/log?tailLines=-1', 'reader')).status, 400);
    assert.equal((await get('/v1/namespaces/shop/pods/web-0/log?container=../x', 'reader')).status, 400);
  });
});
