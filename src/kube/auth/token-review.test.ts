import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { FakeClock } from '../clock.ts';
import { TokenReviewer, tokenExpiryMs } from './token-review.ts';

const jwt = (exp?: number): string => `h.${Buffer.from(JSON.stringify(exp === undefined ? {} : { exp })).toString('base64url')}.s`;

function apiServer(answers: Record<string, unknown>) {
  const calls: Array<{ path: string; body: unknown }> = [];
  const client = {
    json: async <T>(path: string, init: { body?: unknown } = {}): Promise<T> => {
      calls.push({ path, body: init.body });
      const token = (init.body as { spec: { token: string } }).spec.token;
      const status = answers[token];
      if (status instanceof Error) throw status;
      return { status } as T;
    },
  };
  return { client, calls };
}

const podUser = {
  authenticated: true, audiences: ['crowsnest.dev/prober'],
  user: { username: 'system:serviceaccount:shop:default', extra: { 'authentication.kubernetes.io/pod-name': ['web-1'], 'authentication.kubernetes.io/pod-uid': ['uid-1'] } },
};

describe('TokenReviewer', () => {
  it('asks for our audience and reads the pod from the user\'s extra', async () => {
    const token = jwt(2_000_000_000);
    const { client, calls } = apiServer({ [token]: podUser });
    const reviewer = new TokenReviewer({ client, clock: new FakeClock(), audience: 'crowsnest.dev/prober' });
    assert.deepEqual(await reviewer.review(token), { ok: true, identity: { namespace: 'shop', serviceAccount: 'default', podName: 'web-1', podUid: 'uid-1' } });
    assert.deepEqual(calls, [{ path: '/apis/authentication.k8s.io/v1/tokenreviews', body: { apiVersion: 'authentication.k8s.io/v1', kind: 'TokenReview', spec: { token, audiences: ['crowsnest.dev/prober'] } } }]);
  });

  it('refuses unauthenticated tokens, other audiences, and tokens not bound to a pod', async () => {
    const { client } = apiServer({
      bad: { authenticated: false, error: 'invalid bearer token' },
      audience: { ...podUser, audiences: ['https://kubernetes.default.svc'] },
      user: { authenticated: true, audiences: ['crowsnest.dev/prober'], user: { username: 'alice' } },
      unbound: { ...podUser, user: { username: 'system:serviceaccount:shop:default' } },
    });
    const reviewer = new TokenReviewer({ client, clock: new FakeClock(), audience: 'crowsnest.dev/prober' });
    assert.deepEqual(await reviewer.review('bad'), { ok: false, refusal: 'unauthenticated' });
    assert.deepEqual(await reviewer.review('audience'), { ok: false, refusal: 'wrong_audience' });
    assert.deepEqual(await reviewer.review('user'), { ok: false, refusal: 'not_a_pod_token' });
    assert.deepEqual(await reviewer.review('unbound'), { ok: false, refusal: 'not_a_pod_token' });
  });

  it('caches a good answer for a minute but never past the token\'s expiry, and a refusal for five seconds', async () => {
    const clock = new FakeClock(1_000_000_000_000);
    const long = jwt(clock.now() / 1000 + 600);
    const short = jwt(clock.now() / 1000 + 20);
    const { client, calls } = apiServer({ [long]: podUser, [short]: podUser, bad: { authenticated: false } });
    const reviewer = new TokenReviewer({ client, clock, audience: 'crowsnest.dev/prober' });
    await Promise.all([reviewer.review(long), reviewer.review(long), reviewer.review(short), reviewer.review('bad')]);
    assert.equal(calls.length, 3, 'concurrent reviews of one token are shared');
    clock.advance(4_000);
    await Promise.all([reviewer.review(long), reviewer.review(short), reviewer.review('bad')]);
    assert.equal(calls.length, 3, 'all cached');
    clock.advance(2_000);
    await reviewer.review('bad');
    assert.equal(calls.length, 4, 'refusal cached 5 s');
    clock.advance(15_000);
    await reviewer.review(short);
    assert.equal(calls.length, 5, 'short-lived token cached only until its exp');
    await reviewer.review(long);
    assert.equal(calls.length, 5);
    clock.advance(40_000);
    await reviewer.review(long);
    assert.equal(calls.length, 6, 'good answers cached one minute');
  });

  it('does not cache a failed review: the API server being down is not a refusal', async () => {
    const { client, calls } = apiServer({ t: new Error('503 Service Unavailable') });
    const reviewer = new TokenReviewer({ client, clock: new FakeClock(), audience: 'crowsnest.dev/prober' });
    await assert.rejects(reviewer.review('t'), /503/);
    await assert.rejects(reviewer.review('t'), /503/);
    assert.equal(calls.length, 2);
  });

  it('keeps at most maxEntries answers', async () => {
    const tokens = Array.from({ length: 20 }, (_, i) => `t${i}`);
    const { client, calls } = apiServer(Object.fromEntries(tokens.map((t) => [t, podUser])));
    const reviewer = new TokenReviewer({ client, clock: new FakeClock(), maxEntries: 5, audience: 'crowsnest.dev/prober' });
    for (const t of tokens) await reviewer.review(t);
    await reviewer.review('t19');
    assert.equal(calls.length, 20, 'the newest is still cached');
    await reviewer.review('t0');
    assert.equal(calls.length, 21, 'the oldest was dropped');
  });
});

describe('tokenExpiryMs', () => {
  it('reads exp, and nothing from what is not a JWT', () => {
    assert.equal(tokenExpiryMs(jwt(1_700_000_000)), 1_700_000_000_000);
    assert.equal(tokenExpiryMs(jwt()), undefined);
    assert.equal(tokenExpiryMs('opaque'), undefined);
    assert.equal(tokenExpiryMs('a.!!!.b'), undefined);
  });
});
