/**
 * A loopback TCP relay the tests put between a client and the apiserver, to cut or silence the
 * connection on purpose: `cut()` drops every connection and refuses new ones, `blackhole()`
 * keeps connections open but stops forwarding (a half-dead network path), `restore()` goes back
 * to relaying. TLS passes through untouched.
 */
import { createConnection, createServer, type Server, type Socket } from 'node:net';

type Mode = 'relay' | 'cut' | 'blackhole';

export class TcpProxy {
  private readonly server: Server;
  private readonly pairs = new Set<{ client: Socket; upstream: Socket }>();
  private mode: Mode = 'relay';
  port = 0;

  private constructor(targetHost: string, targetPort: number) {
    this.server = createServer((client) => {
      if (this.mode === 'cut') {
        client.destroy();
        return;
      }
      const upstream = createConnection({ host: targetHost, port: targetPort });
      const pair = { client, upstream };
      this.pairs.add(pair);
      const forward = (from: Socket, to: Socket): void => {
        from.on('data', (chunk: Buffer) => {
          if (this.mode === 'relay') to.write(chunk);
        });
      };
      forward(client, upstream);
      forward(upstream, client);
      const close = (): void => {
        this.pairs.delete(pair);
        client.destroy();
        upstream.destroy();
      };
      client.on('close', close).on('error', close);
      upstream.on('close', close).on('error', close);
    });
  }

  /** A relay on 127.0.0.1 (a free port) to `targetHost:targetPort` (the testbed's `plane.host`). */
  static async start(targetPort: number, targetHost: string): Promise<TcpProxy> {
    const proxy = new TcpProxy(targetHost, targetPort);
    await new Promise<void>((resolve) => proxy.server.listen(0, '127.0.0.1', resolve));
    const address = proxy.server.address();
    proxy.port = typeof address === 'object' && address ? address.port : 0;
    return proxy;
  }

  /** Drops every open connection and refuses new ones until {@link restore}. */
  cut(): void {
    this.mode = 'cut';
    for (const { client, upstream } of this.pairs) {
      client.destroy();
      upstream.destroy();
    }
    this.pairs.clear();
  }

  /** Open connections stay up but carry nothing more; new connections are relayed normally. */
  blackhole(): void {
    this.mode = 'blackhole';
  }

  /** Silences only the connections open now; later ones relay normally. */
  blackholeExisting(): void {
    for (const pair of this.pairs) {
      pair.client.removeAllListeners('data');
      pair.upstream.removeAllListeners('data');
    }
  }

  restore(): void {
    this.mode = 'relay';
  }

  get openConnections(): number {
    return this.pairs.size;
  }

  async close(): Promise<void> {
    this.cut();
    await new Promise<void>((resolve) => this.server.close(() => resolve()));
  }
}
