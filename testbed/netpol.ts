/**
 * NetworkPolicy for real on the testbed's real nodes: kube-network-policies (kubernetes-sigs,
 * built from its Go module with a main of ours, testbed/netpol/main.go) runs once per node inside
 * that node's network namespace. It gives every new connection of the node's pods a verdict in
 * user space, through a netfilter queue, from the NetworkPolicies, Pods and Namespaces it watches.
 *
 * How packets reach it: upstream installs an nftables table whose rules end in `queue num 100`.
 * This machine's kernel has no nft_queue expression (CONFIG_NFT_QUEUE is not set, and there are
 * no loadable modules), so that table is refused as a whole and the controller logs
 * "syncing nftables rules" errors on every change (expected here, and harmless: nothing of it is
 * installed). The kernel does have nfnetlink_queue and the xt NFQUEUE target, which iptables-nft
 * uses through nft_compat; {@link divertRules} feed the same queue with it, at the same place
 * (POSTROUTING, after DNAT so Service traffic is judged by its pod destination) and with the same
 * exemptions (established and related packets, the node's own root processes such as kubelet
 * probes). Upstream narrows the queue to pods that some policy selects; these rules queue every
 * new connection from or to the node's pod range instead (a testbed is small: one user-space
 * verdict per connection). The rules live in the node's namespace and go with it.
 *
 * Fail-open: the rule's `--queue-bypass` accepts packets while no enforcer listens (before it has
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
/** The iptables chain (mangle table, node namespace) holding the divert rules. */
export const NETPOL_CHAIN = 'CROWSNEST-NETPOL';
/** Group of the enforcers' client certificates; {@link netpolRbac} grants it what they read and write. */
export const NETPOL_GROUP = 'crowsnest-testbed:netpol';

/** iptables-restore input (mangle table, without flushing what kube-proxy owns) for one node. */
export function divertRules(podCidr: string, queue = NETPOL_QUEUE): string {
  const toQueue = `-j NFQUEUE --queue-num ${queue} --queue-bypass`;
  return [
    '*mangle',
    `:${NETPOL_CHAIN} - [0:0]`,
    `-A POSTROUTING -j ${NETPOL_CHAIN}`,
    // Upstream's `meta skuid 0 accept`: the node's own root processes (kubelet probes) are never judged.
    `-A ${NETPOL_CHAIN} -m owner --uid-owner 0 -j RETURN`,
    // Verdicts are per connection: answers and later packets of an accepted one pass.
    `-A ${NETPOL_CHAIN} -m conntrack --ctstate ESTABLISHED,RELATED -j RETURN`,
    `-A ${NETPOL_CHAIN} -s ${podCidr} ${toQueue}`,
    `-A ${NETPOL_CHAIN} -d ${podCidr} ${toQueue}`,
    'COMMIT',
    '',
  ].join('\n');
}

/** Installs {@link divertRules} in the node's network namespace. */
export async function installDivertRules(node: RealNodeAddresses): Promise<void> {
  await new Promise<void>((resolve, reject) => {
    const child = execFile('nsenter', [`--net=/run/netns/${node.netns}`, 'iptables-restore', '-w', '--noflush'], (err, _stdout, stderr) => {
      if (err) reject(new Error(`installing the NetworkPolicy divert rules in ${node.netns} failed: ${stderr || err.message}`));
      else resolve();
    });
    child.stdin?.end(divertRules(node.podCidr));
  });
}

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
