/**
 * Real nodes for the testbed: per node a kubelet, its own containerd (Debian's, with runc) and
 * the CNI bridge/host-local/portmap/loopback plugins (Debian's containernetworking-plugins), a
 * kube-proxy and a NetworkPolicy enforcer (netpol.ts) per node, and one CoreDNS for the cluster —
 * all of it in the node's network namespace (see network.ts for addresses and why).
 *
 * Each node is a "node container" without a container engine: a holder process (`sleep
 * infinity`) owns the node's mount namespace, made private, in which tmpfs file systems hide the
 * host's /run, /var/lib and /var/log, and /etc/resolv.conf names the cluster DNS. Those are where containerd, runc, libcni and kubelet keep
 * what they cannot be told to keep elsewhere (shim sockets under /run/containerd, the CNI result
 * cache in /var/lib/cni, the /var/log/containers symlinks); every other path is set to the node's
 * dir, `<state dir>/nodes/<node>/`. Every daemon of the node enters the holder's mount and network
 * namespaces (nsenter), so container mounts (rootfs overlays, volumes, the pods' netns files)
 * exist only in the node's mount namespace: when the node's processes are gone the kernel drops
 * them all, and the host's mount table never sees one.
 *
 * Failures met on this machine and what avoids them (see also REFERENCE.md § "Real nodes"):
 * - runc dies with "can't get final child's PID from pipe: EOF" without CAP_SYS_RESOURCE:
 *   containerd's `restrict_oom_score_adj = true` (kind does the same for rootless nodes); kubelet
 *   gets `oomScoreAdj: 0` for the same reason.
 * - cgroup v1 here: `cgroupDriver: cgroupfs`, `failCgroupV1: false`, and a `cgroupRoot` per node
 *   (two kubelets in one cgroup tree would delete each other's pod cgroups).
 * - a bare `name:tag` resolves to docker.io: every image, the sandbox (pause) image included, is
 *   named fully (the loopback registry or localhost/).
 * - kubelet refuses a loopback node IP: the node IP is on eth0 of the node namespace.
 *
 * Tuned for 2 shared cores: `--v=1`, image GC off (thresholds 100 %), no volume stats, eviction
 * only at 1 % free disk / 100 MiB memory (a busy CI disk must not taint the nodes).
 */
import { type ChildProcess, execFile, spawn } from 'node:child_process';
import { closeSync, existsSync, openSync } from 'node:fs';
import { mkdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { NETPOL_GROUP, NETPOL_METRICS_PORT, NETPOL_QUEUE, queueBound } from './netpol.ts';
import { daemonCgroupProcs, type RealNodeAddresses, type SlotAddresses } from './network.ts';
import { base64File, issueCertificate, type Pki } from './pki.ts';

const execFileAsync = promisify(execFile);

/** Debian's binaries the nodes run (installed by testbed/build.sh). */
export const CNI_BIN_DIR = '/usr/lib/cni';
const CONTAINERD = '/usr/bin/containerd';
const CTR = '/usr/bin/ctr';

/** The daemons of a node, and the cluster's CoreDNS (on node 0). */
export type NodeComponent = 'holder' | 'containerd' | 'kubelet' | 'kube-proxy' | 'coredns' | 'netpol';

/** What the nodes' containerd pulls. */
export interface RealNodeImages {
  /** Fully qualified sandbox (pause) image reference. */
  readonly pause: string;
  /** Plain-HTTP registry `host:port` containerd pulls from; the only registry host it is configured for. */
  readonly registry: string;
}

export interface RealNodesContext {
  readonly dir: string;
  readonly binDir: string;
  readonly pki: Pki;
  /** https://<host bridge IP>:<port> */
  readonly server: string;
  readonly addresses: SlotAddresses;
  readonly images: RealNodeImages;
  readonly detached: boolean;
  readonly log: (line: string) => void;
  /** Called with each started process, so the control plane records it in its state file. */
  readonly onSpawn: (key: string, pid: number) => void | Promise<void>;
}

/** A started daemon. */
interface Daemon {
  readonly child: ChildProcess;
  readonly logPath: string;
}

export class RealNodes {
  private readonly ctx: RealNodesContext;
  private readonly holders = new Map<string, number>();
  private readonly daemons = new Map<string, Daemon>();

  constructor(ctx: RealNodesContext) {
    this.ctx = ctx;
  }

  get nodes(): readonly RealNodeAddresses[] {
    return this.ctx.addresses.nodes;
  }

  /** A node's own dir. */
  nodeDir(node: RealNodeAddresses): string {
    return join(this.ctx.dir, 'nodes', node.name);
  }

  /**
   * Everything that does not need the API server: per node the holder and containerd (with its
   * CNI config, so the runtime reports its network ready). Runs while the control plane starts.
   */
  async startRuntimes(): Promise<void> {
    await Promise.all(this.nodes.map(async (node) => {
      await this.writeRuntimeFiles(node);
      await this.startHolder(node);
      await this.startContainerd(node);
    }));
  }

  /** Starts kubelet and kube-proxy on every node and CoreDNS on node 0; the API server must serve. */
  async startNodeAgents(): Promise<void> {
    await Promise.all(this.nodes.map(async (node) => {
      await this.writeAgentFiles(node);
      await this.spawnInNode(node, 'kubelet', [join(this.ctx.binDir, 'kubelet'),
        `--config=${join(this.nodeDir(node), 'kubelet', 'config.json')}`,
        `--kubeconfig=${join(this.nodeDir(node), 'kubelet', 'kubeconfig')}`,
        `--root-dir=${join(this.nodeDir(node), 'kubelet', 'root')}`,
        `--cert-dir=${join(this.nodeDir(node), 'kubelet', 'pki')}`,
        `--node-ip=${node.ip}`,
        `--hostname-override=${node.name}`,
        '--v=1',
      ]);
      await this.spawnInNode(node, 'kube-proxy', [join(this.ctx.binDir, 'kube-proxy'),
        `--config=${join(this.nodeDir(node), 'kube-proxy.json')}`,
        '--v=1',
      ]);
    }));
    const first = this.nodes[0];
    if (first) {
      await writeFile(join(this.ctx.dir, 'Corefile'), corefile(first.ip, join(this.ctx.dir, 'coredns.kubeconfig')));
      await this.writeKubeconfig(join(this.ctx.dir, 'coredns.kubeconfig'), 'coredns', this.ctx.pki.clients.coredns);
      await this.spawnInNode(first, 'coredns', [join(this.ctx.binDir, 'coredns'), '-conf', join(this.ctx.dir, 'Corefile')]);
    }
  }

  /**
   * The NetworkPolicy enforcer (kube-network-policies, see netpol.ts) on every node; resolves once
   * each one reads its queue (its informers have synced).
   * The API server must serve and the RBAC of netpolRbac() exist.
   */
  async startPolicyEnforcers(): Promise<void> {
    await Promise.all(this.nodes.map(async (node) => {
      const dir = this.nodeDir(node);
      const client = await issueCertificate(this.ctx.pki, `netpol-${node.name}-client`, { subject: `/O=${NETPOL_GROUP}/CN=${NETPOL_GROUP}:${node.name}`, usage: 'clientAuth' });
      await this.writeKubeconfig(join(dir, 'netpol.kubeconfig'), `${NETPOL_GROUP}:${node.name}`, client);
      await this.spawnInNode(node, 'netpol', [join(this.ctx.binDir, 'netpol'),
        `--kubeconfig=${join(dir, 'netpol.kubeconfig')}`,
        `--hostname-override=${node.name}`,
        `--nfqueue-id=${NETPOL_QUEUE}`,
        `--metrics-bind-address=${node.ip}:${NETPOL_METRICS_PORT}`,
        '--v=1',
      ]);
      await this.waitFor(`${node.name} NetworkPolicy enforcer bound to queue ${NETPOL_QUEUE}`, () => queueBound(node));
    }));
  }

  /** CoreDNS's readiness endpoint (the `ready` plugin: 200 once the kubernetes plugin has synced). */
  get dnsReadyUrl(): string | undefined {
    const first = this.nodes[0];
    return first ? `http://${first.ip}:${COREDNS_READY_PORT}/ready` : undefined;
  }

  /** The containerd socket of a node (on the host file system: `ctr --address` works from the host). */
  containerdSocket(node: RealNodeAddresses): string {
    return join(this.nodeDir(node), 'containerd', 'containerd.sock');
  }

  /** Throws when a daemon has exited (so waits fail fast with the log to read). */
  checkAlive(): void {
    for (const [key, daemon] of this.daemons) {
      if (daemon.child.exitCode !== null || daemon.child.signalCode !== null) {
        throw new Error(`${key} exited (code ${daemon.child.exitCode}, signal ${daemon.child.signalCode}); see ${daemon.logPath}`);
      }
    }
  }

  /** Stops the node daemons' process handles from keeping this process alive or reporting exits. */
  forget(): void {
    for (const daemon of this.daemons.values()) daemon.child.removeAllListeners('exit');
    this.daemons.clear();
  }

  // --- files -------------------------------------------------------------------------------------

  private async writeRuntimeFiles(node: RealNodeAddresses): Promise<void> {
    const dir = this.nodeDir(node);
    for (const sub of ['containerd/root', 'containerd/state', 'containerd/runc', 'containerd/certs.d', 'cni/conf', 'cni/ipam', 'tmp', 'pod-logs', 'kubelet/root', 'kubelet/pki']) {
      await mkdir(join(dir, sub), { recursive: true });
    }
    const { registry, pause } = this.ctx.images;
    await writeFile(join(dir, 'containerd', 'config.toml'), containerdConfig({ dir, pause }));
    // containerd looks up `certs.d/<host:port>/hosts.toml`. Plain HTTP, pulls only: the registry
    // is the testbed's own, on the host bridge.
    await mkdir(join(dir, 'containerd', 'certs.d', registry), { recursive: true });
    await writeFile(
      join(dir, 'containerd', 'certs.d', registry, 'hosts.toml'),
      `server = "http://${registry}"\n\n[host."http://${registry}"]\n  capabilities = ["pull", "resolve"]\n`,
    );
    // kubelet's resolvConf (pods with dnsPolicy Default get it; ClusterFirst pods get the cluster
    // DNS with it as base) and the node's own /etc/resolv.conf: neither a pod nor a node daemon
    // ever asks the machine's resolver.
    await writeFile(join(dir, 'resolv.conf'), `nameserver ${this.ctx.addresses.dnsServiceIp}\n`);
    await writeFile(join(dir, 'cni', 'conf', '10-crowsnest.conflist'), JSON.stringify(cniConfig(node, join(dir, 'cni', 'ipam')), null, 2));
  }

  private async writeAgentFiles(node: RealNodeAddresses): Promise<void> {
    const dir = this.nodeDir(node);
    const { pki, addresses } = this.ctx;
    const client = await issueCertificate(pki, `kubelet-${node.name}-client`, { subject: `/O=system:nodes/CN=system:node:${node.name}`, usage: 'clientAuth' });
    const serving = await issueCertificate(pki, `kubelet-${node.name}-serving`, { subject: `/CN=${node.name}`, usage: 'serverAuth', ips: [node.ip], dns: [node.name] });
    await this.writeKubeconfig(join(dir, 'kubelet', 'kubeconfig'), `system:node:${node.name}`, client);
    const kubelet = {
      apiVersion: 'kubelet.config.k8s.io/v1beta1',
      kind: 'KubeletConfiguration',
      containerRuntimeEndpoint: `unix://${this.containerdSocket(node)}`,
      cgroupDriver: 'cgroupfs',
      cgroupRoot: node.cgroupRoot,
      failCgroupV1: false,
      failSwapOn: false,
      oomScoreAdj: 0,
      podLogsDir: join(dir, 'pod-logs'),
      resolvConf: join(dir, 'resolv.conf'),
      clusterDNS: [addresses.dnsServiceIp],
      clusterDomain: 'cluster.local',
      tlsCertFile: serving.cert,
      tlsPrivateKeyFile: serving.key,
      authentication: { anonymous: { enabled: false }, webhook: { enabled: true }, x509: { clientCAFile: pki.caCert } },
      authorization: { mode: 'Webhook' },
      readOnlyPort: 0,
      healthzBindAddress: '127.0.0.1',
      rotateCertificates: false,
      serverTLSBootstrap: false,
      imageGCHighThresholdPercent: 100,
      imageGCLowThresholdPercent: 99,
      evictionHard: { 'memory.available': '100Mi', 'nodefs.available': '1%', 'nodefs.inodesFree': '1%', 'imagefs.available': '1%' },
      volumeStatsAggPeriod: '0s',
      shutdownGracePeriod: '0s',
      shutdownGracePeriodCriticalPods: '0s',
      serializeImagePulls: false,
      maxPods: 110,
    };
    await writeFile(join(dir, 'kubelet', 'config.json'), JSON.stringify(kubelet, null, 2));
    await this.writeKubeconfig(join(dir, 'kube-proxy.kubeconfig'), 'system:kube-proxy', pki.clients['kube-proxy']);
    const proxy = {
      apiVersion: 'kubeproxy.config.k8s.io/v1alpha1',
      kind: 'KubeProxyConfiguration',
      clientConnection: { kubeconfig: join(dir, 'kube-proxy.kubeconfig') },
      hostnameOverride: node.name,
      mode: 'iptables',
      clusterCIDR: addresses.clusterCidr,
      // Node-local ports in the node's own namespace: no clash between nodes or testbeds.
      healthzBindAddress: '127.0.0.1:10256',
      metricsBindAddress: '127.0.0.1:10249',
      // The conntrack table size is the host's (settable only from the initial namespace).
      conntrack: { maxPerCore: 0, min: 0 },
    };
    await writeFile(join(dir, 'kube-proxy.json'), JSON.stringify(proxy, null, 2));
  }

  private async writeKubeconfig(path: string, user: string, credentials: { cert: string; key: string }): Promise<void> {
    const kubeconfig = {
      apiVersion: 'v1',
      kind: 'Config',
      clusters: [{ name: 'crowsnest-testbed', cluster: { server: this.ctx.server, 'certificate-authority-data': await base64File(this.ctx.pki.caCert) } }],
      users: [{ name: user, user: { 'client-certificate-data': await base64File(credentials.cert), 'client-key-data': await base64File(credentials.key) } }],
      contexts: [{ name: 'crowsnest-testbed', context: { cluster: 'crowsnest-testbed', user } }],
      'current-context': 'crowsnest-testbed',
    };
    await writeFile(path, JSON.stringify(kubeconfig, null, 2), { mode: 0o600 });
  }

  // --- processes ---------------------------------------------------------------------------------

  /** The holder: enters the node's netns, makes a private mount namespace, hides /run, /var/lib, /var/log. */
  private async startHolder(node: RealNodeAddresses): Promise<void> {
    const ready = join(this.nodeDir(node), 'holder.ready');
    const script = [
      'set -e',
      'mount -t tmpfs -o mode=0755 crowsnest-node /run',
      'mount -t tmpfs -o mode=0755 crowsnest-node /var/lib',
      'mount -t tmpfs -o mode=0755 crowsnest-node /var/log',
      'mkdir -p /var/lib/cni /var/log/containers',
      // A symlinked resolv.conf (systemd-resolved) points into the hidden /run: left dangling,
      // the node then has no resolver at all, which is as safe.
      `[ -L /etc/resolv.conf ] || mount --bind '${join(this.nodeDir(node), 'resolv.conf')}' /etc/resolv.conf`,
      `: > '${ready}'`,
      'exec sleep infinity',
    ].join('\n');
    const pid = await this.spawnDaemon(node, 'holder', [
      'nsenter', `--net=/run/netns/${node.netns}`, '--',
      'unshare', '--mount', '--propagation', 'private', '--', 'sh', '-c', script,
    ]);
    await this.waitFor(`${node.name} holder`, async () => existsSync(ready));
    this.holders.set(node.name, pid);
  }

  private async startContainerd(node: RealNodeAddresses): Promise<void> {
    const dir = this.nodeDir(node);
    await this.spawnInNode(node, 'containerd', [CONTAINERD, '--config', join(dir, 'containerd', 'config.toml')], { TMPDIR: join(dir, 'tmp') });
    await this.waitFor(`${node.name} containerd`, async () => {
      await execFileAsync(CTR, ['--address', this.containerdSocket(node), 'version'], { timeout: 5_000 });
      return true;
    });
  }

  /** Runs `argv` inside the node's namespaces (the holder's mount and network namespace). */
  private async spawnInNode(node: RealNodeAddresses, component: Exclude<NodeComponent, 'holder'>, argv: readonly string[], env: Record<string, string> = {}): Promise<number> {
    const holder = this.holders.get(node.name);
    if (!holder) throw new Error(`${node.name} has no holder process`);
    return await this.spawnDaemon(node, component, ['nsenter', `--target=${holder}`, '--mount', '--net', '--', ...argv], env);
  }

  /**
   * Spawns `argv` in the slot's daemon cgroup (written by the shell before it execs, so every
   * child the daemon forks is tracked too). The returned pid is the daemon's own: sh, nsenter and
   * unshare all exec.
   */
  private async spawnDaemon(node: RealNodeAddresses, component: NodeComponent, argv: readonly string[], env: Record<string, string> = {}): Promise<number> {
    const key = `${node.name}/${component}`;
    const logPath = join(this.ctx.dir, 'logs', `${node.name}-${component}.log`);
    const fd = openSync(logPath, 'a');
    const child = spawn('sh', ['-c', 'echo $$ > "$0" && exec "$@"', daemonCgroupProcs(this.ctx.addresses), ...argv], {
      stdio: ['ignore', fd, fd],
      detached: this.ctx.detached,
      env: { ...process.env, GOMAXPROCS: process.env.GOMAXPROCS ?? '2', ...env },
    });
    closeSync(fd);
    if (child.pid === undefined) throw new Error(`could not start ${key}: ${(await new Promise<Error>((r) => child.once('error', r))).message}`);
    child.unref();
    this.daemons.set(key, { child, logPath });
    child.once('exit', (code, signal) => {
      if (this.daemons.get(key)?.child === child) this.ctx.log(`${key} exited (code ${code}, signal ${signal}); see ${logPath}`);
    });
    this.ctx.log(`started ${key} (pid ${child.pid}), log ${logPath}`);
    await this.ctx.onSpawn(key, child.pid);
    return child.pid;
  }

  private async waitFor(what: string, probe: () => Promise<boolean>, timeoutMs = 60_000): Promise<void> {
    const deadline = Date.now() + timeoutMs;
    let last = '';
    while (Date.now() < deadline) {
      this.checkAlive();
      try {
        if (await probe()) return;
      } catch (err) {
        last = (err as Error).message;
      }
      await new Promise((r) => setTimeout(r, 100));
    }
    throw new Error(`timed out after ${timeoutMs / 1000} s waiting for ${what}${last ? ` (last error: ${last})` : ''}`);
  }
}

/** Port of CoreDNS's `ready` plugin, on node 0's IP. */
const COREDNS_READY_PORT = 8181;

/**
 * Cluster names only: the server block is for the cluster's zones, so CoreDNS answers REFUSED for
 * any other name instead of forwarding it (there is no forward plugin in our build at all).
 */
function corefile(bindIp: string, kubeconfig: string): string {
  return `cluster.local:53 in-addr.arpa:53 ip6.arpa:53 {
    bind ${bindIp}
    errors
    ready ${bindIp}:${COREDNS_READY_PORT}
    kubernetes cluster.local in-addr.arpa ip6.arpa {
        kubeconfig ${kubeconfig} crowsnest-testbed
        pods insecure
        ttl 5
    }
    cache 5
    loadbalance
}
`;
}

function containerdConfig(options: { dir: string; pause: string }): string {
  const c = join(options.dir, 'containerd');
  return `# containerd of one testbed node: every path in the node's dir (see testbed/realnode.ts).
version = 2
root = "${c}/root"
state = "${c}/state"
# Plugins that would write outside the node's dir or that a node does not use.
disabled_plugins = [
  "io.containerd.internal.v1.opt",
  "io.containerd.snapshotter.v1.aufs",
  "io.containerd.snapshotter.v1.btrfs",
  "io.containerd.snapshotter.v1.devmapper",
  "io.containerd.snapshotter.v1.zfs",
  "io.containerd.tracing.processor.v1.otlp",
]

[grpc]
  address = "${c}/containerd.sock"

[debug]
  level = "warn"

[plugins."io.containerd.grpc.v1.cri"]
  sandbox_image = "${options.pause}"
  # No CAP_SYS_RESOURCE on this kind of VM: runc would fail writing oom_score_adj.
  restrict_oom_score_adj = true
  # Pod netns files in the node's state dir, not /var/run/netns.
  netns_mounts_under_state_dir = true
  enable_unprivileged_ports = true
  enable_unprivileged_icmp = true
  [plugins."io.containerd.grpc.v1.cri".containerd]
    snapshotter = "overlayfs"
    default_runtime_name = "runc"
    [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc]
      runtime_type = "io.containerd.runc.v2"
      [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc.options]
        SystemdCgroup = false
        Root = "${c}/runc"
  [plugins."io.containerd.grpc.v1.cri".cni]
    bin_dir = "${CNI_BIN_DIR}"
    conf_dir = "${join(options.dir, 'cni', 'conf')}"
  [plugins."io.containerd.grpc.v1.cri".registry]
    # Only hosts with a hosts.toml here are configured (the testbed's registry); any other name
    # has no route out of the node's namespace anyway.
    config_path = "${c}/certs.d"
`;
}

/** A bridge `cni0` in the node's namespace, host-local IPAM from the node's /24, no masquerading. */
function cniConfig(node: RealNodeAddresses, ipamDir: string): unknown {
  return {
    cniVersion: '1.0.0',
    name: 'crowsnest',
    plugins: [
      {
        type: 'bridge',
        bridge: 'cni0',
        isGateway: true,
        ipMasq: false,
        hairpinMode: true,
        ipam: {
          type: 'host-local',
          dataDir: ipamDir,
          ranges: [[{ subnet: node.podCidr, gateway: node.podGateway }]],
          routes: [{ dst: '0.0.0.0/0' }],
        },
      },
      { type: 'portmap', capabilities: { portMappings: true } },
    ],
  };
}
