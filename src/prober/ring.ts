/**
 * Who probes whom: the members of a NetworkProber (its injected, running pods) sit on a ring in
 * the order of a hash of their uid, and each one probes the next `neighbours` members after it.
 *
 * - **Cost O(n·N), not O(n²):** each agent probes at most N peers, so the cluster sends n·N
 *   probes per period and each agent exports N series per metric (Goldpinger's full mesh is n²).
 * - **Coverage:** every member is probed by exactly min(N, n−1) others — the N before it — so no
 *   pod goes unwatched, and a pod that stops answering is seen by N independent sources.
 * - **Stability:** the order depends only on each member's own uid, so a pod joining or leaving
 *   changes the sets of the N members before it and nobody else's (kubenurse picks neighbour
 *   nodes the same way); pods restarting elsewhere in the ring leave a probing agent's series alone.
 * - **Mixing:** a uid hash, not names, so the pods of one ReplicaSet (similar names) and of one node
 *   spread over the ring, and neighbours are usually on other nodes.
 */
import { createHash } from 'node:crypto';

export interface RingMember {
  readonly uid: string;
}

export class NeighbourRing<M extends RingMember> {
  private readonly members: readonly M[];
  private readonly positions: ReadonlyMap<string, number>;

  /**
   * `members` in any order; a uid listed twice counts once. `hash` places a uid on the ring
   * (default {@link ringHash}); pass a memoised one when rings are rebuilt often.
   */
  constructor(members: readonly M[], hash: (uid: string) => string = ringHash) {
    const unique = new Map<string, M>();
    for (const member of members) if (!unique.has(member.uid)) unique.set(member.uid, member);
    const ordered = [...unique.values()]
      .map((member) => ({ member, hash: hash(member.uid) }))
      .sort((a, b) => (a.hash < b.hash ? -1 : a.hash > b.hash ? 1 : a.member.uid < b.member.uid ? -1 : 1));
    this.members = ordered.map((entry) => entry.member);
    this.positions = new Map(this.members.map((member, index) => [member.uid, index]));
  }

  get size(): number {
    return this.members.length;
  }

  has(uid: string): boolean {
    return this.positions.has(uid);
  }

  /** The members `uid` probes: the next min(`neighbours`, size − 1) on the ring. Empty for a non-member. */
  peersOf(uid: string, neighbours: number): M[] {
    const at = this.positions.get(uid);
    if (at === undefined) return [];
    const count = Math.min(Math.max(0, Math.floor(neighbours)), this.members.length - 1);
    const peers: M[] = [];
    for (let step = 1; step <= count; step++) peers.push(this.members[(at + step) % this.members.length]!);
    return peers;
  }

  /** The members that probe `uid`: the previous min(`neighbours`, size − 1). */
  probersOf(uid: string, neighbours: number): M[] {
    const at = this.positions.get(uid);
    if (at === undefined) return [];
    const count = Math.min(Math.max(0, Math.floor(neighbours)), this.members.length - 1);
    const probers: M[] = [];
    const n = this.members.length;
    for (let step = 1; step <= count; step++) probers.push(this.members[(at - step + n) % n]!);
    return probers;
  }

  /** Every probed pair (source → destination), for counting what the status reports. */
  *pairs(neighbours: number): Generator<readonly [M, M]> {
    for (const member of this.members) for (const peer of this.peersOf(member.uid, neighbours)) yield [member, peer];
  }
}

/** Position on the ring: the first 64 bits of SHA-256 of the uid, as 16 hex digits (sortable as text). */
export function ringHash(uid: string): string {
  return createHash('sha256').update(uid).digest('hex').slice(0, 16);
}
