/**
 * One probe of one peer, two ways, each with a deadline:
 *
 * - **http**: `GET /ping` on a kept-alive connection to the peer's agent; the RTT is the time
 *   from writing the request to having read the whole response. The connection is made (and
 *   timed as part of the deadline, not of the RTT) when there is none, when the last one broke,
 *   or when it sat idle long enough that the peer may be closing it; a request that finds its
 *   reused connection closed before any answer is retried once on a new one (the keep-alive race
 *   every HTTP client has), so a peer's idle timeout never shows up as a failure.
 * - **tcp**: the time to open a new TCP connection (SYN → SYN-ACK → ACK, as the kernel reports
 *   the connect), closed at once.
 *
 * A failure is a reason, never a latency: `timeout`, `refused` (nothing listens), `reset`,
 * `unreachable` (no route, host down), `http_status` (answered, not 200), `protocol` (answered
 * something that is not our agent's HTTP), `other`.
 */
import type { FailureReason, Peer } from '../contract.ts';
import { ConnectionClosedError, connectionFailureReason, HttpConnection, openSocket } from '../../observe/lean/http.ts';

export type ProbeOutcome =
  | { readonly ok: true; readonly rttSeconds: number }
  | { readonly ok: false; readonly reason: FailureReason; readonly detail: string };

/** A kept-alive connection idle longer than this is replaced rather than trusted (peers close idle ones after 60 s). */
const MAX_IDLE_MS = 30_000;
const MS_PER_SECOND = 1000;

export class PeerProber {
  private readonly connections = new Map<string, HttpConnection>();

  /** HTTP GET /ping on the peer's kept-alive connection. */
  async http(peer: Peer, timeoutMs: number): Promise<ProbeOutcome> {
    const deadline = performance.now() + timeoutMs;
    const key = peerKey(peer);
    try {
      let connection = this.connections.get(key);
      const reused = connection?.usable && performance.now() - connection.lastUsedMs < MAX_IDLE_MS;
      if (!reused) {
        connection?.close();
        connection = await this.open(peer, deadline);
      }
      try {
        return await this.ping(connection!, peer, deadline);
      } catch (err) {
        if (!(reused && err instanceof ConnectionClosedError && err.beforeResponse)) throw err;
        connection = await this.open(peer, deadline);
        return await this.ping(connection, peer, deadline);
      }
    } catch (err) {
      this.connections.get(key)?.close();
      this.connections.delete(key);
      return failure(err);
    }
  }

  /** Time to open a new TCP connection to the peer's ping port. */
  async tcp(peer: Peer, timeoutMs: number): Promise<ProbeOutcome> {
    const started = performance.now();
    try {
      const socket = await openSocket({ host: peer.ip, port: peer.port }, started + timeoutMs);
      const rttSeconds = (performance.now() - started) / MS_PER_SECOND;
      socket.destroy();
      return { ok: true, rttSeconds };
    } catch (err) {
      return failure(err);
    }
  }

  /** Closes the connection to a peer that left. */
  forget(peer: Peer): void {
    const key = peerKey(peer);
    this.connections.get(key)?.close();
    this.connections.delete(key);
  }

  close(): void {
    for (const connection of this.connections.values()) connection.close();
    this.connections.clear();
  }

  private async open(peer: Peer, deadline: number): Promise<HttpConnection> {
    const connection = new HttpConnection(await openSocket({ host: peer.ip, port: peer.port }, deadline));
    this.connections.set(peerKey(peer), connection);
    return connection;
  }

  private async ping(connection: HttpConnection, peer: Peer, deadline: number): Promise<ProbeOutcome> {
    const started = performance.now();
    const response = await connection.request({ method: 'GET', path: '/ping', host: hostHeader(peer) }, deadline);
    const rttSeconds = (performance.now() - started) / MS_PER_SECOND;
    if (response.status !== 200) return { ok: false, reason: 'http_status', detail: `GET /ping answered ${response.status}` };
    return { ok: true, rttSeconds };
  }
}

function peerKey(peer: Peer): string {
  return `${peer.uid}/${peer.ip}:${peer.port}`;
}

function hostHeader(peer: Peer): string {
  return peer.ip.includes(':') ? `[${peer.ip}]:${peer.port}` : `${peer.ip}:${peer.port}`;
}

/** The failure reason of an error from a probe. */
export function failureReason(err: unknown): FailureReason {
  return connectionFailureReason(err);
}

function failure(err: unknown): ProbeOutcome {
  return { ok: false, reason: failureReason(err), detail: err instanceof Error ? err.message : String(err) };
}
