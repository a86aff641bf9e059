/**
 * NetworkPolicy for real on the testbed's real nodes: kube-network-policies (kubernetes-sigs,
 * built from its Go module with a main of ours, testbed/netpol/), runs once per node inside that
 * node's network namespace. It gives every new connection from or to a pod of its node that some
 * NetworkPolicy selects a verdict in user space, through a netfilter queue, from the
 * NetworkPolicies, Pods and Namespaces it watches.
 *
 * How packets reach it: upstream installs an nftables table whose rules end in `queue num 100`.
 * This machine's kernel has no nft_queue expression (CONFIG_NFT_QUEUE is not set, and there are
 * no loadable modules), so that table is refused as a whole and the controller logs
 * "syncing nftables rules" errors on every change (expected here, and harmless: nothing of it is
 * installed). The kernel does have nfnetlink_queue and the xt NFQUEUE target, which iptables-nft
 * uses through nft_compat: our main keeps the same rules with it (testbed/netpol/divert.go, chain
 * {@link NETPOL_CHAIN} in the node's mangle table), at the same place (POSTROUTING, after DNAT),
 * for the same pods (this node's, selected by a policy) and with the same exemptions (established
 * and related packets, the node's own root processes such as kubelet probes). Pods no policy
 * selects never pass through user space. The rules live in the node's namespace and go with it.
 *
 * Fail-open: the rules' `--queue-bypass` accepts packets while no enforcer listens (before it has
 * synced, after it died), so the rest of the testbed never depends on it; the NetworkPolicy test
 * is what notices an enforcer that is not there.
 */
import { execFile } from 'node:child_process';
import { readFile } from 'node:fs/promises';
import { promisify } from 'node:util';
import type { RealNodeAddresses } from './network.ts';

const execFileAsync = promisify(execFile);

/** The netfilter queue the divert rules feed and each node's enforcer reads (upstream's default). */
export const NETPOL_QUEUE = 100;
/** Port of each enforcer's Prometheus metrics, on its node's IP. */
export const NETPOL_METRICS_PORT = 9080;
/** The iptables chain (mangle table, node namespace) of the divert rules (testbed/netpol/divert.go). */
export const NETPOL_CHAIN = 'CROWSNEST-NETPOL';
/** Group of the enforcers' client certificates; {@link netpolRbac} grants it what they read and write. */
export const NETPOL_GROUP = 'crowsnest-testbed:netpol';

/**
 * True once a process in the node's namespace is bound to `queue`: the enforcer opens it only
 * after its informers have synced, so from then on its verdicts know every policy.
 */
export async function queueBound(node: RealNodeAddresses, queue = NETPOL_QUEUE): Promise<boolean> {
  const { stdout } = await execFileAsync('nsenter', [`--net=/run/netns/${node.netns}`, 'cat', '/proc/net/netfilter/nfnetlink_queue']);
  return parseBoundQueues(stdout).includes(queue);
}

/** Queue numbers in `/proc/net/netfilter/nfnetlink_queue` (first column of each line). */
export function parseBoundQueues(text: string): number[] {
  return text.split('\n').map((l) => l.trim().split(/\s+/)[0]).filter((f): f is string => !!f && /^\d+$/.test(f)).map(Number);
}

/** Resident memory of a process in KiB (VmRSS), or undefined when it is gone. */
export async function residentKiB(pid: number): Promise<number | undefined> {
  try {
    const match = /^VmRSS:\s+(\d+) kB$/m.exec(await readFile(`/proc/${pid}/status`, 'utf8'));
    return match ? Number(match[1]) : undefined;
  } catch {
    return undefined;
  }
}

/** RBAC for the enforcers: what kube-network-policies watches, and the Events it records. */
export function netpolRbac(): Array<[string, unknown]> {
  const name = 'crowsnest-testbed:netpol';
  return [
    ['/apis/rbac.authorization.k8s.io/v1/clusterroles', {
      metadata: { name },
      rules: [
        { apiGroups: [''], resources: ['pods', 'namespaces'], verbs: ['get', 'list', 'watch'] },
        { apiGroups: ['networking.k8s.io'], resources: ['networkpolicies'], verbs: ['get', 'list', 'watch'] },
        { apiGroups: ['', 'events.k8s.io'], resources: ['events'], verbs: ['create', 'patch', 'update'] },
      ],
    }],
    ['/apis/rbac.authorization.k8s.io/v1/clusterrolebindings', {
      metadata: { name },
      roleRef: { apiGroup: 'rbac.authorization.k8s.io', kind: 'ClusterRole', name },
      subjects: [{ apiGroup: 'rbac.authorization.k8s.io', kind: 'Group', name: NETPOL_GROUP }],
    }],
  ];
}
