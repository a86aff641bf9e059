/**
 * The network of a testbed's real nodes: addresses that never leave this machine, a slot per
 * testbed so several testbeds (tests of several worktrees, `make cluster`) run side by side, and
 * the plumbing that connects the nodes to the host and to each other.
 *
 * ```
 *  host network namespace                          node network namespaces (one per real node)
 *  ────────────────────────                        ──────────────────────────────────────────────
 *  kube-apiserver, etcd, kwok, tests               crowsnest<S>-real-0            crowsnest<S>-real-1
 *  bridge crowsnest<S>  198.18.<8S+4>.1/24  ─veth─ eth0 198.18.<8S+4>.2   ─veth─  eth0 198.18.<8S+4>.3
 *    (no uplink: only the nodes' veths)             kubelet, containerd,            kubelet, containerd,
 *  route 198.18.<8S+i>.0/24 via node i               kube-proxy, CoreDNS             kube-proxy
 *  route 198.19.<8S>.0/21   via node 0              bridge cni0 198.18.<8S>.1/24    cni0 198.18.<8S+1>.1/24
 *  unreachable 198.18.0.0/15 (shared, last resort)   └ pods 198.18.<8S>.0/24          └ pods 198.18.<8S+1>.0/24
 * ```
 *
 * - **Ranges.** Pods live in 198.18.0.0/16 and Services in 198.19.0.0/16 (RFC 2544's benchmarking
 *   ranges: never routed on the internet). Slot S (0–15) owns 198.18.8S.0/21 and 198.19.8S.0/21:
 *   one pod /24 per real node (8S+i, up to four nodes, together the cluster CIDR 198.18.8S.0/22),
 *   the link /24 8S+4 (host bridge .1, node i .2+i) and a /21 of Service IPs. kwok's fake pods get
 *   IPs from 198.18.128.0/17, which nothing routes.
 * - **Nothing leaves.** The node namespaces have no default route (what is not a testbed address
 *   is unreachable), the bridges have no uplink, nothing masquerades towards the machine's own
 *   interfaces, and the host keeps an `unreachable 198.18.0.0/15` route while any slot is in use,
 *   so no address of these ranges is ever sent out of eth0 (the host does not forward either:
 *   nothing here turns on its ip_forward). kube-proxy masquerades *inside* a node namespace (host
 *   → ClusterIP traffic gets the node's address, so the answer comes back the same way).
 * - **Why namespaces.** Each node is like one of kind's node containers without a container:
 *   its kubelet (serving :10250), containerd, CNI bridge `cni0`, iptables rules and kube-proxy
 *   live in a network namespace of their own, so two nodes, or two testbeds, never share
 *   iptables chains (two kube-proxies in one namespace would fight over KUBE-*), bridge names or
 *   ports. The node IP sits on the namespace's end of the veth, a real (not loopback) interface,
 *   as kubelet requires. Cleanup is: kill the slot's processes, delete the namespaces and the
 *   bridge; every route and rule inside goes with them.
 * - **Slots** are claimed under a lock file ({@link SLOT_DIR}/lock, taken with flock(1)) as one
 *   JSON file per slot naming its state dir and owner. A claim whose owner is gone (the test
 *   process died, the detached cluster's components are dead) is stale: the next claim reaps what
 *   it left (processes, namespaces, bridge, cgroups) and reuses the slot.
 * - **Processes** of a slot (node daemons and every container) are tracked by cgroup: daemons in
 *   `/crowsnest-testbed/s<S>/daemons` (pids controller), containers under each kubelet's
 *   `cgroupRoot` `/crowsnest-testbed/s<S>/real-<i>`, so a reap finds every process, shims and
 *   pods included, without pid files.
 */
import { execFile, execFileSync, spawn } from 'node:child_process';
import { existsSync, mkdirSync, readdirSync, readFileSync, rmdirSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { promisify } from 'node:util';

const execFileAsync = promisify(execFile);

/** Where slot claims and their lock live (cleared by a reboot, as are namespaces and bridges). */
export const SLOT_DIR = '/run/crowsnest-testbed';
/** How many testbeds with real nodes one machine runs at once. */
export const SLOT_COUNT = 16;
/** Real nodes per testbed at most: each gets one pod /24 of the slot's four. */
export const MAX_REAL_NODES = 4;
/** Every address a testbed uses, real pods and Services; the host never sends them out. */
export const TESTBED_RANGES = ['198.18.0.0/16', '198.19.0.0/16'] as const;
/** The host's last-resort route for {@link TESTBED_RANGES}, kept while any slot is claimed. */
const UNREACHABLE_ROUTE = '198.18.0.0/15';
/** kwok's fake pod IPs: in the pod range, never routed anywhere. */
export const KWOK_POD_CIDR = '198.18.128.0/17';
/** Top of the cgroup trees of all slots. */
export const CGROUP_PARENT = 'crowsnest-testbed';

export interface RealNodeAddresses {
  readonly name: string;
  readonly index: number;
  /** The node's InternalIP, on eth0 of its namespace. */
  readonly ip: string;
  readonly podCidr: string;
  /** The node's pod bridge (cni0) address, the pods' default gateway. */
  readonly podGateway: string;
  /** Named network namespace (`ip netns`). */
  readonly netns: string;
  /** Host end of the node's veth, attached to the slot's bridge. */
  readonly hostVeth: string;
  /** kubelet's cgroupRoot (relative to each hierarchy's root). */
  readonly cgroupRoot: string;
}

export interface SlotAddresses {
  readonly slot: number;
  /** The host's address on the slot bridge: the API server (and test servers pods call) bind it. */
  readonly hostIp: string;
  readonly linkCidr: string;
  /** All real nodes' pod /24s (kube-proxy's clusterCIDR: traffic from elsewhere is masqueraded). */
  readonly clusterCidr: string;
  readonly serviceCidr: string;
  /** ClusterIP of `default/kubernetes` (the first of the range, as the API server assigns it). */
  readonly kubernetesServiceIp: string;
  /** ClusterIP of `kube-system/kube-dns`. */
  readonly dnsServiceIp: string;
  readonly bridge: string;
  /** The slot's cgroup, relative to each hierarchy's root. */
  readonly cgroup: string;
  readonly nodes: readonly RealNodeAddresses[];
}

/** Real node names: `crowsnest-real-<i>`. */
export function realNodeName(index: number): string {
  return `crowsnest-real-${index}`;
}

/** The addresses of slot `slot` with `realNodes` real nodes (pure: unit-tested). */
export function slotAddresses(slot: number, realNodes: number): SlotAddresses {
  if (!Number.isInteger(slot) || slot < 0 || slot >= SLOT_COUNT) throw new Error(`slot must be 0..${SLOT_COUNT - 1}, got ${slot}`);
  if (!Number.isInteger(realNodes) || realNodes < 0 || realNodes > MAX_REAL_NODES) throw new Error(`real nodes must be 0..${MAX_REAL_NODES}, got ${realNodes}`);
  const base = 8 * slot;
  const link = base + 4;
  const cgroup = `${CGROUP_PARENT}/s${slot}`;
  const nodes = Array.from({ length: realNodes }, (_, index): RealNodeAddresses => ({
    name: realNodeName(index),
    index,
    ip: `198.18.${link}.${2 + index}`,
    podCidr: `198.18.${base + index}.0/24`,
    podGateway: `198.18.${base + index}.1`,
    netns: `crowsnest${slot}-real-${index}`,
    hostVeth: `crowsnest${slot}r${index}`,
    cgroupRoot: `/${cgroup}/real-${index}`,
  }));
  return {
    slot,
    hostIp: `198.18.${link}.1`,
    linkCidr: `198.18.${link}.0/24`,
    clusterCidr: `198.18.${base}.0/22`,
    serviceCidr: `198.19.${base}.0/21`,
    kubernetesServiceIp: `198.19.${base}.1`,
    dnsServiceIp: `198.19.${base}.10`,
    bridge: `crowsnest${slot}`,
    cgroup,
    nodes,
  };
}

// --- slot claims ----------------------------------------------------------------------------------

/** What a slot's claim file records. */
interface SlotClaim {
  readonly slot: number;
  /** The testbed's state dir. */
  readonly dir: string;
  /** The process that claimed it, and its start time (so a reused pid is not taken for it). */
  readonly ownerPid: number;
  readonly ownerStart: string;
  /** A detached testbed (`make cluster`) outlives its owner; it is alive while its API server is. */
  readonly detached: boolean;
}

/** Decides whether a claim's testbed is still there; given by the control plane, which knows its state file. */
export type ClaimAlive = (claim: { dir: string; detached: boolean }) => boolean;

/**
 * Claims a free slot for the testbed in `dir`, reaping stale claims on the way. Needs root
 * (namespaces, bridges, cgroups). Resolves to the slot number.
 *
 * Slots are handed out round-robin, starting after the last one claimed: a slot just released is
 * the last to be taken again, so a check of what a released testbed left behind (the cleanup
 * test) does not find the next testbed's bridge and processes under the same slot number.
 */
export async function claimSlot(dir: string, detached: boolean, detachedAlive: ClaimAlive, log: (line: string) => void): Promise<number> {
  return await withSlotLock(() => {
    const claims = readClaims();
    const start = (readLastClaimedSlot() + 1) % SLOT_COUNT;
    for (let offset = 0; offset < SLOT_COUNT; offset++) {
      const slot = (start + offset) % SLOT_COUNT;
      const claim = claims.get(slot);
      if (claim && claimIsLive(claim, detachedAlive)) continue;
      if (claim || leftoversExist(slot)) {
        log(`reaping slot ${slot}${claim ? ` (left by ${claim.dir})` : ' (unclaimed leftovers)'}`);
        reapSlotSync(slot);
      }
      const record: SlotClaim = { slot, dir, ownerPid: process.pid, ownerStart: processStart(process.pid) ?? '', detached };
      writeFileSync(claimPath(slot), JSON.stringify(record, null, 2));
      writeFileSync(LAST_CLAIMED_PATH, `${slot}\n`);
      ensureUnreachableRoute();
      return slot;
    }
    throw new Error(`all ${SLOT_COUNT} testbed slots are in use (see ${SLOT_DIR}); stop a testbed (make cluster-down) first`);
  });
}

/** Marks a claim as belonging to a detached testbed (after `make cluster` has started it). */
export function markClaimDetached(slot: number): void {
  const path = claimPath(slot);
  const claim = JSON.parse(readFileSync(path, 'utf8')) as SlotClaim;
  writeFileSync(path, JSON.stringify({ ...claim, detached: true }, null, 2));
}

/**
 * Removes everything of `slot` (processes, namespaces, bridge, cgroups) and its claim; drops the
 * shared unreachable route when no slot is left. Synchronous so that a process 'exit' handler can
 * run it.
 */
export function releaseSlotSync(slot: number): void {
  reapSlotSync(slot);
  rmSync(claimPath(slot), { force: true });
  // Without the lock: a claim made concurrently re-adds the route (ensureUnreachableRoute runs
  // after its claim file is written), and a missed removal only leaves a harmless route behind
  // until the next release.
  if (readClaims().size === 0) run(['ip', 'route', 'del', 'unreachable', UNREACHABLE_ROUTE], { ignoreErrors: true });
}

/** The slot claimed last, so the next claim starts after it (see {@link claimSlot}). */
const LAST_CLAIMED_PATH = join(SLOT_DIR, 'last-claimed');

function readLastClaimedSlot(): number {
  try {
    const slot = Number(readFileSync(LAST_CLAIMED_PATH, 'utf8').trim());
    return Number.isInteger(slot) && slot >= 0 && slot < SLOT_COUNT ? slot : -1;
  } catch {
    return -1;
  }
}

function claimPath(slot: number): string {
  return join(SLOT_DIR, `slot-${slot}.json`);
}

function readClaims(): Map<number, SlotClaim> {
  const claims = new Map<number, SlotClaim>();
  let entries: string[] = [];
  try {
    entries = readdirSync(SLOT_DIR);
  } catch {
    return claims;
  }
  for (const entry of entries) {
    const match = /^slot-(\d+)\.json$/.exec(entry);
    if (!match) continue;
    try {
      claims.set(Number(match[1]), JSON.parse(readFileSync(join(SLOT_DIR, entry), 'utf8')) as SlotClaim);
    } catch {
      // Half-written by a process that died: stale.
      claims.set(Number(match[1]), { slot: Number(match[1]), dir: '', ownerPid: 0, ownerStart: '', detached: false });
    }
  }
  return claims;
}

function claimIsLive(claim: SlotClaim, detachedAlive: ClaimAlive): boolean {
  if (claim.ownerPid > 0 && processStart(claim.ownerPid) === claim.ownerStart) return true;
  return claim.detached && detachedAlive({ dir: claim.dir, detached: true });
}

/** Field 22 of /proc/<pid>/stat (start time in clock ticks since boot), or undefined when gone. */
function processStart(pid: number): string | undefined {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    return stat.slice(stat.lastIndexOf(')') + 2).split(' ')[19];
  } catch {
    return undefined;
  }
}

function leftoversExist(slot: number): boolean {
  return existsSync(`/sys/class/net/crowsnest${slot}`) || existsSync(join(trackingRoot(), CGROUP_PARENT, `s${slot}`))
    || listNetns().some((ns) => ns.startsWith(`crowsnest${slot}-`));
}

/**
 * Runs `critical` holding {@link SLOT_DIR}/lock. The lock is held by a flock(1) child that waits
 * on its stdin: ending stdin (or this process dying) releases it.
 */
async function withSlotLock<T>(critical: () => T): Promise<T> {
  mkdirSync(SLOT_DIR, { recursive: true });
  const holder = spawn('flock', ['--exclusive', join(SLOT_DIR, 'lock'), 'sh', '-c', 'echo locked; read _'], { stdio: ['pipe', 'pipe', 'inherit'] });
  try {
    await new Promise<void>((resolve, reject) => {
      holder.once('error', reject);
      holder.once('exit', (code) => reject(new Error(`flock exited with ${code} before taking ${SLOT_DIR}/lock`)));
      holder.stdout.once('data', () => resolve());
    });
    return critical();
  } finally {
    holder.stdin.end();
    holder.unref();
  }
}

// --- plumbing ---------------------------------------------------------------------------------

/**
 * Creates the slot's bridge, each node's namespace, veth, addresses and routes, and the cgroups
 * the node processes go in. Assumes the slot was just claimed (no leftovers).
 */
export async function createSlotNetwork(addresses: SlotAddresses): Promise<void> {
  const { bridge, hostIp, linkCidr, serviceCidr, nodes } = addresses;
  const prefix = linkCidr.split('/')[1];
  const host = [
    `link add ${bridge} type bridge`,
    `addr add ${hostIp}/${prefix} dev ${bridge}`,
    `link set ${bridge} up`,
  ];
  for (const node of nodes) {
    host.push(
      `netns add ${node.netns}`,
      `link add ${node.hostVeth} type veth peer name eth0 netns ${node.netns}`,
      `link set ${node.hostVeth} master ${bridge} up`,
    );
  }
  await ipBatch(host);
  for (const node of nodes) {
    const inside = [
      `link set lo up`,
      `addr add ${node.ip}/${prefix} dev eth0`,
      `link set eth0 up`,
      // Other nodes' pods: straight to that node over the link (no hop through the host).
      ...nodes.filter((n) => n !== node).map((n) => `route add ${n.podCidr} via ${n.ip}`),
      // A node's own processes (CoreDNS, kubelet) reaching a ClusterIP need a route before
      // kube-proxy's DNAT rewrites the destination.
      `route add ${serviceCidr} via ${hostIp}`,
      `route add unreachable ${UNREACHABLE_ROUTE}`,
    ];
    await ipBatch(inside, node.netns);
    // Forwarding between pods, the link and the node; bridged pod traffic through iptables so
    // kube-proxy's rules see pod → Service → pod on the same bridge (both per-namespace settings).
    await execFileAsync('nsenter', [`--net=/run/netns/${node.netns}`, 'sysctl', '-q', '-w', 'net.ipv4.ip_forward=1', 'net.bridge.bridge-nf-call-iptables=1']);
  }
  // From the host: each node's pods through that node, Services through node 0's kube-proxy.
  const routes = nodes.map((n) => `route add ${n.podCidr} via ${n.ip} dev ${bridge}`);
  if (nodes.length > 0) routes.push(`route add ${serviceCidr} via ${nodes[0]!.ip} dev ${bridge}`);
  await ipBatch(routes);
  createCgroups(addresses);
}

/** `ip [-n netns] -batch -` with `commands` on stdin. */
async function ipBatch(commands: readonly string[], netns?: string): Promise<void> {
  if (commands.length === 0) return;
  const args = [...(netns ? ['-n', netns] : []), '-batch', '-'];
  await new Promise<void>((resolve, reject) => {
    const child = execFile('ip', args, (err, _stdout, stderr) => {
      if (err) reject(new Error(`ip ${args.join(' ')} failed: ${stderr || err.message}\ncommands:\n${commands.join('\n')}`));
      else resolve();
    });
    child.stdin?.end(`${commands.join('\n')}\n`);
  });
}

function ensureUnreachableRoute(): void {
  const existing = run(['ip', 'route', 'show', 'type', 'unreachable', UNREACHABLE_ROUTE], { ignoreErrors: true });
  if (!existing.trim()) run(['ip', 'route', 'add', 'unreachable', UNREACHABLE_ROUTE], { ignoreErrors: true });
}

function listNetns(): string[] {
  try {
    return readdirSync('/run/netns');
  } catch {
    return [];
  }
}

// --- cgroups ----------------------------------------------------------------------------------

/** cgroup v2 only (unified at /sys/fs/cgroup), or v1 (one mount per controller, as on this machine). */
function cgroupV2(): boolean {
  return existsSync('/sys/fs/cgroup/cgroup.controllers');
}

/**
 * Every hierarchy root a kubelet's cgroupRoot must exist in and runc may create cgroups in: on a
 * v1 host each controller's mount, and the v2 `unified` mount of a hybrid host too (runc 1.1
 * mirrors its cgroups there).
 */
function hierarchyRoots(): string[] {
  if (cgroupV2()) return ['/sys/fs/cgroup'];
  const roots: string[] = [];
  for (const line of readFileSync('/proc/self/mountinfo', 'utf8').split('\n')) {
    const fields = line.split(' ');
    const dash = fields.indexOf('-');
    if (dash > 0 && (fields[dash + 1] === 'cgroup' || fields[dash + 1] === 'cgroup2')) roots.push(fields[4]!);
  }
  return roots;
}

/** The hierarchy processes are tracked (and killed) in. */
function trackingRoot(): string {
  return cgroupV2() ? '/sys/fs/cgroup' : '/sys/fs/cgroup/pids';
}

/** The cgroup.procs file the slot's daemons are put in. */
export function daemonCgroupProcs(addresses: SlotAddresses): string {
  return join(trackingRoot(), addresses.cgroup, 'daemons', 'cgroup.procs');
}

function createCgroups(addresses: SlotAddresses): void {
  const v2 = cgroupV2();
  for (const root of hierarchyRoots()) {
    const dirs = [CGROUP_PARENT, addresses.cgroup, ...addresses.nodes.map((n) => n.cgroupRoot.slice(1))];
    if (v2 || root === trackingRoot()) dirs.push(`${addresses.cgroup}/daemons`);
    for (const dir of dirs) {
      const path = join(root, dir);
      if (existsSync(path)) continue;
      mkdirSync(path);
      // A v1 cpuset cgroup takes no task until it has CPUs and memory nodes: inherit the parent's.
      if (existsSync(join(path, 'cpuset.cpus')) && readFileSync(join(path, 'cpuset.cpus'), 'utf8').trim() === '') {
        for (const file of ['cpuset.cpus', 'cpuset.mems']) writeFileSync(join(path, file), readFileSync(join(path, '..', file)));
      }
    }
    if (v2) {
      // Controllers for the kubelets' pod cgroups (v2 has no internal processes: daemons get a leaf).
      const controllers = readFileSync(join(root, 'cgroup.controllers'), 'utf8').trim().split(/\s+/).filter(Boolean).map((c) => `+${c}`).join(' ');
      for (const dir of [CGROUP_PARENT, addresses.cgroup, ...addresses.nodes.map((n) => n.cgroupRoot.slice(1))]) {
        try { writeFileSync(join(root, dir, '..', 'cgroup.subtree_control'), controllers); } catch { /* best effort */ }
      }
    }
  }
}

/**
 * Kills every process in the slot's cgroups until none is left (a dying containerd may still
 * have started a shim), then removes the namespaces, the bridge (its routes go with it) and the
 * cgroups. Idempotent.
 */
export function reapSlotSync(slot: number): void {
  const cgroup = join(trackingRoot(), CGROUP_PARENT, `s${slot}`);
  for (let round = 0; round < 50; round++) {
    const pids = cgroupProcs(cgroup);
    if (pids.length === 0) break;
    for (const pid of pids) {
      try { process.kill(pid, 'SIGKILL'); } catch { /* gone */ }
    }
    sleepSync(20);
  }
  // The host ends of the nodes' veths first: a deleted namespace frees its interfaces only when
  // the kernel's asynchronous namespace cleanup gets to it, which took over 5 s under load.
  for (const link of readdirSync('/sys/class/net').filter((l) => new RegExp(`^crowsnest${slot}r\\d+$`).test(l))) {
    run(['ip', 'link', 'del', link], { ignoreErrors: true });
  }
  for (const ns of listNetns().filter((n) => n.startsWith(`crowsnest${slot}-`))) run(['ip', 'netns', 'del', ns], { ignoreErrors: true });
  if (existsSync(`/sys/class/net/crowsnest${slot}`)) run(['ip', 'link', 'del', `crowsnest${slot}`], { ignoreErrors: true });
  for (const root of hierarchyRoots()) removeCgroupTree(join(root, CGROUP_PARENT, `s${slot}`));
  for (const root of hierarchyRoots()) {
    try { rmdirSync(join(root, CGROUP_PARENT)); } catch { /* other slots, or gone */ }
  }
}

/** Pids in `dir` and every cgroup below it. */
function cgroupProcs(dir: string): number[] {
  const pids: number[] = [];
  const walk = (path: string): void => {
    let entries: import('node:fs').Dirent[];
    try {
      entries = readdirSync(path, { withFileTypes: true });
    } catch {
      return;
    }
    try {
      for (const line of readFileSync(join(path, 'cgroup.procs'), 'utf8').split('\n')) if (line) pids.push(Number(line));
    } catch { /* removed meanwhile */ }
    for (const entry of entries) if (entry.isDirectory()) walk(join(path, entry.name));
  };
  walk(dir);
  return pids;
}

/** True when a process of the slot still runs (for tests and reaping). */
export function slotProcesses(slot: number): number[] {
  return cgroupProcs(join(trackingRoot(), CGROUP_PARENT, `s${slot}`));
}

function removeCgroupTree(dir: string): void {
  let entries: import('node:fs').Dirent[];
  try {
    entries = readdirSync(dir, { withFileTypes: true });
  } catch {
    return;
  }
  for (const entry of entries) if (entry.isDirectory()) removeCgroupTree(join(dir, entry.name));
  // An emptied cgroup can stay busy for a moment while the kernel finishes its last exits.
  for (let attempt = 0; attempt < 50; attempt++) {
    try {
      rmdirSync(dir);
      return;
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') return;
      sleepSync(20);
    }
  }
}

function run(argv: readonly string[], options: { ignoreErrors?: boolean } = {}): string {
  try {
    return execFileSync(argv[0]!, argv.slice(1), { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] });
  } catch (err) {
    if (options.ignoreErrors) return '';
    throw new Error(`${argv.join(' ')} failed: ${(err as { stderr?: string }).stderr ?? (err as Error).message}`);
  }
}

function sleepSync(ms: number): void {
  Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, ms);
}
