import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { FakeClock } from '../clock.ts';
import { AccessReviewer } from './subject-access-review.ts';

const alice = { username: 'alice', uid: 'u-1', groups: ['team-shop', 'system:authenticated'], extra: { scopes: ['x'] } };
const podLog = { namespace: 'shop', verb: 'get', resource: 'pods', subresource: 'log', name: 'web-0' };

function apiServer(options: { users: Record<string, typeof alice>; allow: (spec: Record<string, unknown>) => boolean; fail?: boolean }) {
  const calls: Array<{ path: string; body: { spec: Record<string, unknown> } }> = [];
  const client = {
    json: async <T>(path: string, init: { body?: unknown } = {}): Promise<T> => {
      const body = init.body as { spec: Record<string, unknown> };
      calls.push({ path, body });
      if (options.fail) throw new Error('connection refused');
      if (path.endsWith('/tokenreviews')) {
        const user = options.users[body.spec['token'] as string];
        return { status: user ? { authenticated: true, user } : { authenticated: false, error: 'invalid' } } as T;
      }
      return { status: { allowed: options.allow(body.spec), reason: 'RBAC: no binding' } } as T;
    },
  };
  return { client, calls };
}

describe('AccessReviewer', () => {
  it('asks about the token\'s user, with its groups, uid and extra, and the exact subresource and name', async () => {
    const { client, calls } = apiServer({ users: { t: alice }, allow: () => true });
    const reviewer = new AccessReviewer({ client, clock: new FakeClock() });
    const decision = await reviewer.check('t', podLog);
    assert.equal(decision.allowed, true);
    assert.deepEqual(calls[0]!.body.spec, { token: 't' }, 'no audience: a token for the API server, as kubectl sends');
    assert.deepEqual(calls[1]!.body.spec, {
      user: 'alice', uid: 'u-1', groups: ['team-shop', 'system:authenticated'], extra: { scopes: ['x'] },
      resourceAttributes: { namespace: 'shop', verb: 'get', group: '', resource: 'pods', subresource: 'log', name: 'web-0' },
    });
  });

  it('answers 401 for a token the API server does not know, 403 naming the user and what it may not do', async () => {
    const { client } = apiServer({ users: { t: alice }, allow: () => false });
    const reviewer = new AccessReviewer({ client, clock: new FakeClock() });
    assert.deepEqual(await reviewer.check('forged', podLog), { allowed: false, status: 401, reason: 'the token is not valid for this cluster' });
    const denied = await reviewer.check('t', podLog);
    assert.equal(denied.allowed, false);
    assert.equal(!denied.allowed && denied.status, 403);
    assert.match(!denied.allowed ? denied.reason : '', /^alice may not get pods\/log web-0 in namespace shop \(RBAC: no binding\)$/);
  });

  it('caches a decision per token and attributes for a while, then asks again', async () => {
    const { client, calls } = apiServer({ users: { t: alice }, allow: (spec) => (spec['resourceAttributes'] as { name: string }).name === 'web-0' });
    const clock = new FakeClock();
    const reviewer = new AccessReviewer({ client, clock });
    await reviewer.check('t', podLog);
    await reviewer.check('t', podLog);
    assert.equal(calls.length, 2);
    assert.equal((await reviewer.check('t', { ...podLog, name: 'web-1' })).allowed, false, 'another pod is another question');
    assert.equal(calls.length, 4);
    clock.advance(10_001);
    await reviewer.check('t', podLog);
    assert.equal(calls.length, 6);
  });

  it('rejects when the API server cannot be asked (the endpoint answers an error, never the logs)', async () => {
    const { client } = apiServer({ users: {}, allow: () => true, fail: true });
    await assert.rejects(new AccessReviewer({ client, clock: new FakeClock() }).check('t', podLog), /connection refused/);
  });
});
