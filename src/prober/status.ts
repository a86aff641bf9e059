/**
 * A NetworkProber's status as a pure function of what the operator sees: its members (injected,
 * running pods it selects) and the pair counts of its agents' reports.
 *
 * - **Ready** — True `AgentsProbing` when every member's agent reported within 30 s; False
 *   `NoAgents` when no selected pod runs the agent (they are injected at creation: restart the
 *   workloads); False `AgentsNotReporting` while some agents have not reported (new pods, or
 *   agents that cannot reach the operator).
 * - **Degraded** — True `PairsUnreachable` while some probed pairs fail, naming a few; False
 *   `AllPairsReachable` otherwise.
 */
import type { Condition } from '../kube/objects/conditions.ts';
import { setStatusCondition } from '../kube/objects/conditions.ts';
import type { Clock } from '../kube/clock.ts';
import { NetworkProberConditions, type NetworkProber, type NetworkProberStatus } from './api.ts';
import type { PairSummary } from './peers.ts';

export const REASONS = {
  agentsProbing: 'AgentsProbing',
  noAgents: 'NoAgents',
  agentsNotReporting: 'AgentsNotReporting',
  pairsUnreachable: 'PairsUnreachable',
  allPairsReachable: 'AllPairsReachable',
} as const;

/** The status to write for `prober`, keeping transition times of conditions that did not flip. */
export function desiredStatus(prober: NetworkProber, members: number, summary: PairSummary, clock: Pick<Clock, 'now'>): NetworkProberStatus {
  const generation = prober.metadata?.generation;
  let conditions: Condition[] = [...(prober.status?.conditions ?? [])] as Condition[];
  const set = (type: string, status: 'True' | 'False', reason: string, message: string): void => {
    conditions = setStatusCondition(conditions, { type, status, reason, message, ...(generation !== undefined ? { observedGeneration: generation } : {}) }, clock).conditions;
  };

  if (members === 0) {
    set(NetworkProberConditions.ready, 'False', REASONS.noAgents,
      'No running pod selected by this NetworkProber runs the agent. The agent is injected when a pod is created: restart the selected workloads (for example kubectl rollout restart deployment/<name>).');
  } else if (summary.reportingMembers < members) {
    set(NetworkProberConditions.ready, 'False', REASONS.agentsNotReporting,
      `${members - summary.reportingMembers} of ${members} agents have not reported to the operator in the last 30 s (just started, or they cannot reach its peer endpoint: see their logs).`);
  } else {
    set(NetworkProberConditions.ready, 'True', REASONS.agentsProbing, `${members} ${members === 1 ? 'pod runs' : 'pods run'} the agent and ${members === 1 ? 'reports' : 'report'}.`);
  }

  if (summary.unreachable > 0) {
    const pairs = summary.reachable + summary.unreachable;
    const more = summary.unreachable > summary.examples.length ? `, and ${summary.unreachable - summary.examples.length} more` : '';
    set(NetworkProberConditions.degraded, 'True', REASONS.pairsUnreachable, `${summary.unreachable} of ${pairs} probed pairs fail: ${summary.examples.join(', ')}${more}.`);
  } else {
    set(NetworkProberConditions.degraded, 'False', REASONS.allPairsReachable,
      summary.reachable > 0 ? `All ${summary.reachable} probed pairs reach each other.` : 'No probed pair has failed.');
  }

  return {
    ...(generation !== undefined ? { observedGeneration: generation } : {}),
    conditions,
    injectedPods: members,
    reachablePairs: summary.reachable,
    unreachablePairs: summary.unreachable,
  } as NetworkProberStatus;
}
