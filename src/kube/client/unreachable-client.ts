/**
 * For tests: a client of an API server that is not there (a loopback port nothing listens on),
 * so informers never sync and nothing is ever written.
 */
import { once } from 'node:events';
import { createServer, type AddressInfo } from 'node:net';
import { KubeConfig } from '@kubernetes/client-node';
import { KubeClient } from './client.ts';

export async function unreachableClient(): Promise<KubeClient> {
  const closed = createServer();
  closed.listen(0, '127.0.0.1');
  await once(closed, 'listening');
  const port = (closed.address() as AddressInfo).port;
  closed.close();
  const kc = new KubeConfig();
  kc.loadFromOptions({ clusters: [{ name: 'c', server: `https://127.0.0.1:${port}` }], users: [{ name: 'u', token: 't' }], contexts: [{ name: 'x', cluster: 'c', user: 'u' }], currentContext: 'x' });
  return new KubeClient(kc);
}
