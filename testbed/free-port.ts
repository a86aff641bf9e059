/**
 * A free loopback port, in a module of its own so that the registry and the control plane can both
 * use it without importing each other.
 */
import { createServer } from 'node:net';

/** A free TCP port on 127.0.0.1 (the OS picks; we release it right away). */
export async function freePort(): Promise<number> {
  return await new Promise((resolvePromise, reject) => {
    const server = createServer();
    server.unref();
    server.on('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const address = server.address();
      const port = typeof address === 'object' && address ? address.port : 0;
      server.close(() => resolvePromise(port));
    });
  });
}
