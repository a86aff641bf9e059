/**
 * A real Kubernetes cluster on this machine for tests and for humans (`make cluster`): etcd,
 * kube-apiserver, kube-controller-manager, kube-scheduler, kwok (fake nodes for scale) and real
 * nodes (kubelet + containerd + CNI, kube-proxy, CoreDNS: see realnode.ts and network.ts), built
 * from Go modules by `testbed/build.sh`.
 *
 * Addresses: with real nodes the API server binds the host's address on the testbed's bridge
 * (`https://198.18.<8S+4>.1:6443`, S = the testbed's slot), so pods reach it through the
 * `kubernetes` Service; without real nodes (benchmarks) it binds 127.0.0.1 on a free port. etcd
 * and kwok's kubelet server stay on 127.0.0.1 (only the host's API server talks to them). Use
 * {@link ControlPlane.server} / {@link ControlPlane.host}, never a literal 127.0.0.1.
 *
 * kwok nodes are tainted {@link KWOK_TAINT} (and labelled `type: kwok`): ordinary pods land on
 * real nodes; a scale test opts into kwok with {@link KWOK_TOLERATION} and {@link KWOK_NODE_SELECTOR}.
 *
 * Life cycle: {@link ControlPlane.start} builds what is missing, claims a network slot (real
 * nodes), writes a PKI and kubeconfigs into a state dir, starts the components in dependency
 * order (the nodes' container runtimes while the control plane starts) and waits for each to be
 * ready, logging how long each part took; {@link ControlPlane.stop} stops everything (real nodes:
 * every process of the slot, the namespaces and the bridge; control plane: TERM, then KILL) and
 * removes the state dir unless asked to keep it. Children started attached are also killed when
 * this process exits for any reason, so a failing test never leaves a cluster behind; a state
 * dir whose owner died without cleaning up is reaped by the next start.
 */
import { type ChildProcess, execFile, spawn } from 'node:child_process';
import { closeSync, openSync, readdirSync, readFileSync, readlinkSync, rmSync, statSync } from 'node:fs';
import { mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { request as httpsRequest } from 'node:https';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import {
  claimSlot, createSlotNetwork, daemonCgroupProcs, KWOK_POD_CIDR, markClaimDetached, releaseSlotSync, type SlotAddresses, slotAddresses,
} from './network.ts';
import { base64File, type ClientName, ensurePki, type Pki } from './pki.ts';
import { registryReference } from '../image/testbed-images.ts';
import { crowsnestImageSource, pushImage, REGISTRY_PORT, startRegistry, testbedImageSources } from './images.ts';
import { netpolRbac } from './netpol.ts';
import { type NodeComponent, RealNodes } from './realnode.ts';
import { freePort } from './free-port.ts';

// Tests and benches take it from here, beside the control plane they start.
export { freePort };

const execFileAsync = promisify(execFile);
const testbedDir = dirname(fileURLToPath(import.meta.url));

/** Components in start order. */
export type ComponentName = 'etcd' | 'kube-apiserver' | 'kube-controller-manager' | 'kube-scheduler' | 'kwok';

export interface ControlPlaneOptions {
  /** State dir (PKI, etcd data, kubeconfigs, logs). Default: a new temp dir, removed on stop. */
  readonly dir?: string;
  /** Number of kwok fake nodes to create (tainted {@link KWOK_TAINT}). Default 3. */
  readonly kwokNodes?: number;
  /**
   * Number of real nodes (`crowsnest-real-<i>`, 0–4). Default 0: a control plane on 127.0.0.1
   * that needs no root.
   */
  readonly realNodes?: number;
  /**
   * A `make image` output dir (default `.image` of the repo): when it holds a build, the
   * Crowsnest image is pushed to the testbed's registry too (`images.crowsnest`).
   */
  readonly crowsnestImageDir?: string;
  /** Start components detached from this process (they outlive it; `make cluster`). Default false. */
  readonly detached?: boolean;
  /** Log progress lines to this function. Default: stderr. */
  readonly log?: (line: string) => void;
}

/** What a detached control plane records so a later process can find and stop it. */
interface StateFile {
  readonly ownerPid: number;
  /** Where the component binaries live: a pid is only signalled if it runs one of them. */
  readonly binDir: string;
  readonly detached: boolean;
  /** The address the API server binds. */
  readonly host?: string;
  readonly ports: Ports;
  readonly pids: Partial<Record<ComponentName, number>>;
  /** The network slot of the real nodes, if any. */
  readonly slot?: number;
  /** `<node>/<daemon>` → pid of the real nodes' processes (and `registry`). */
  readonly nodePids?: Record<string, number>;
  /** Pushed image references by short name. */
  readonly images?: Record<string, string>;
  /** Their manifest digests. */
  readonly imageDigests?: Record<string, string>;
}

interface Ports {
  readonly etcdClient: number;
  readonly etcdPeer: number;
  readonly apiserver: number;
  readonly kwokServer: number;
}

/**
 * kwok CRDs the control plane installs and kwok watches (`--enable-crds`): a `Logs` object named
 * after a pod (or a `ClusterLogs` with a selector) tells kwok's kubelet server which file holds
 * a container's log, so `GET pods/<pod>/log` through the apiserver returns it. The definitions
 * come from kwok's module (`kustomize/crd/bases`), converted to JSON next to the binaries by
 * `testbed/build.sh` (`<binDir>/kwok-crds/`). `Stage` is deliberately not enabled: with it kwok
 * would drop its built-in pod and node stages and act only on Stage objects.
 */
export const KWOK_CRDS = [
  { kind: 'Logs', name: 'logs.kwok.x-k8s.io', file: 'kwok.x-k8s.io_logs.json' },
  { kind: 'ClusterLogs', name: 'clusterlogs.kwok.x-k8s.io', file: 'kwok.x-k8s.io_clusterlogs.json' },
] as const;

/** Label and annotation that make a Node one of kwok's fakes. */
export const KWOK_NODE_ANNOTATION = 'kwok.x-k8s.io/node';
/** The taint on kwok nodes: only pods that tolerate it (scale tests) run there. */
export const KWOK_TAINT = { key: KWOK_NODE_ANNOTATION, value: 'fake', effect: 'NoSchedule' } as const;
/** What a pod spec adds to run on kwok nodes: `tolerations: [KWOK_TOLERATION]`, `nodeSelector: KWOK_NODE_SELECTOR`. */
export const KWOK_TOLERATION = { key: KWOK_NODE_ANNOTATION, operator: 'Equal', value: 'fake', effect: 'NoSchedule' } as const;
export const KWOK_NODE_SELECTOR = { type: 'kwok' } as const;
/** Both, to spread into a pod spec: `spec: { ...ON_KWOK_NODES, containers }`. */
export const ON_KWOK_NODES = { tolerations: [KWOK_TOLERATION], nodeSelector: KWOK_NODE_SELECTOR } as const;
/** The API server's port when it binds the testbed's own bridge address (real nodes). */
const BRIDGE_APISERVER_PORT = 6443;
/** Service range of a control plane without real nodes: nothing routes it, and no slot uses it. */
const LOOPBACK_SERVICE_CIDR = '198.19.128.0/17';
const STATE_FILE = 'testbed-state.json';
const STATE_DIR_PREFIX = 'crowsnest-testbed-';
/**
 * podtemplates are served without the apiserver watch cache, so a watch on them reads etcd
 * directly and an etcd compaction makes an old resourceVersion answer 410 Gone: that is how the
 * tests force watch expiry without waiting for the cache window to roll over.
 */
export const UNCACHED_RESOURCE = 'podtemplates';

const READY_TIMEOUT_MS = 120_000;
const STOP_GRACE_MS = 5_000;

export class ControlPlane {
  /** Directory holding the kube binaries (kubectl included). */
  readonly binDir: string;
  readonly dir: string;
  readonly pki: Pki;
  readonly ports: Ports;
  /** Admin kubeconfig (system:masters). */
  readonly kubeconfigPath: string;
  readonly nodeCount: number;
  /** The address the API server binds: 127.0.0.1, or the host's address on the real nodes' bridge. */
  readonly host: string;
  /** The real nodes' addresses (slot, node IPs, pod and Service ranges); undefined without real nodes. */
  readonly network: SlotAddresses | undefined;
  /**
   * References of the images in the testbed's registry by short name (`pause`, `test`, ...),
   * fully qualified (`198.18.<8S+4>.1:5000/crowsnest/test:<tag>`); empty without real nodes.
   */
  readonly images: Record<string, string> = {};
  /** Manifest digests (`sha256:…`) of {@link images}, by the same short names. */
  readonly imageDigests: Record<string, string> = {};
  /** Seconds each part of the start took, in the order the parts finished. */
  readonly startTimes: ReadonlyArray<{ part: string; seconds: number }>;

  private readonly ownsDir: boolean;
  private readonly detached: boolean;
  private readonly log: (line: string) => void;
  private readonly children = new Map<ComponentName, ChildProcess>();
  private readonly pids: Partial<Record<ComponentName, number>> = {};
  private readonly nodePids: Record<string, number> = {};
  private realNodes: RealNodes | undefined;
  private stopped = false;

  private constructor(init: {
    binDir: string; dir: string; pki: Pki; ports: Ports; ownsDir: boolean; detached: boolean;
    nodeCount: number; log: (line: string) => void; host: string; network: SlotAddresses | undefined;
    startTimes?: Array<{ part: string; seconds: number }>;
  }) {
    this.startTimes = init.startTimes ?? [];
    this.host = init.host;
    this.network = init.network;
    this.binDir = init.binDir;
    this.dir = init.dir;
    this.pki = init.pki;
    this.ports = init.ports;
    this.ownsDir = init.ownsDir;
    this.detached = init.detached;
    this.nodeCount = init.nodeCount;
    this.log = init.log;
    this.kubeconfigPath = join(init.dir, 'kubeconfig');
  }

  /** https://<host>:<port> */
  get server(): string {
    return `https://${this.host}:${this.ports.apiserver}`;
  }

  get etcdUrl(): string {
    return `http://127.0.0.1:${this.ports.etcdClient}`;
  }

  /**
   * Builds (if needed) and starts a cluster; resolves when the API server serves, every node is
   * Ready and (with real nodes) cluster DNS answers.
   */
  static async start(options: ControlPlaneOptions = {}): Promise<ControlPlane> {
    const log = options.log ?? ((line: string) => process.stderr.write(`[testbed] ${line}\n`));
    const started = Date.now();
    const startTimes: Array<{ part: string; seconds: number }> = [];
    const timed = async <T>(part: string, work: () => Promise<T>): Promise<T> => {
      const t0 = Date.now();
      const result = await work();
      startTimes.push({ part, seconds: (Date.now() - t0) / 1000 });
      log(`${part}: ${((Date.now() - t0) / 1000).toFixed(1)} s`);
      return result;
    };
    const realNodes = options.realNodes ?? 0;
    const detached = options.detached ?? false;
    reapOrphanedStateDirs(log);
    const binDir = await timed('binaries (testbed/build.sh)', () => buildBinaries(log));
    const ownsDir = options.dir === undefined;
    const dir = options.dir ? resolve(options.dir) : await mkdtemp(join(tmpdir(), STATE_DIR_PREFIX));
    await mkdir(join(dir, 'logs'), { recursive: true });
    const network = realNodes > 0
      ? slotAddresses(await claimSlot(dir, detached, ({ dir: claimed }) => stateDirAlive(claimed), log), realNodes)
      : undefined;
    let plane: ControlPlane | undefined;
    try {
      const pki = await timed('PKI', () => ensurePki(join(dir, 'pki'), network ? [network.hostIp, network.kubernetesServiceIp] : []));
      const ports: Ports = {
        etcdClient: await freePort(),
        etcdPeer: await freePort(),
        apiserver: network ? BRIDGE_APISERVER_PORT : await freePort(),
        kwokServer: await freePort(),
      };
      const p = new ControlPlane({
        binDir, dir, pki, ports, ownsDir, detached, nodeCount: options.kwokNodes ?? 3, log, host: network?.hostIp ?? '127.0.0.1', network,
        startTimes,
      });
      plane = p;
      if (!detached) registerExitKill(p);
      if (network) await timed('network (namespaces, bridge, routes, cgroups)', () => createSlotNetwork(network));
      await p.writeKubeconfigs();
      // The registry and the nodes' container runtimes need no API server: they start while the
      // control plane does.
      const registryHost = network ? `${network.hostIp}:${REGISTRY_PORT}` : '';
      const sources = network
        ? timed('images built (pause, test)', () => testbedImageSources({
          binDir, outDir: join(dir, 'images'), crowsnestOut: options.crowsnestImageDir ?? join(testbedDir, '..', '.image'), log,
        }))
        : undefined;
      const pushed = sources ? sources.then((s) => timed('registry started, images pushed', () => p.startRegistry(s))) : Promise.resolve();
      pushed.catch(() => {}); // awaited below; a failed start stops the plane, which ends this
      const runtimes = sources
        ? sources.then((s) => timed('real nodes: holders, containerd', () => p.startRuntimes({ pause: registryReference(registryHost, s.pause.name), registry: registryHost })))
        : Promise.resolve();
      runtimes.catch(() => {}); // awaited below
      await timed('etcd', () => p.startEtcd());
      // kwok must find its CRDs served when it starts (its informers would back off otherwise).
      // They are created as soon as the apiserver takes requests, while it finishes starting.
      const crds = p.installKwokCrds();
      crds.catch(() => {}); // awaited below
      await timed('kube-apiserver', () => p.startApiServer());
      await timed('controller-manager, scheduler', async () => {
        await p.startControllerManager();
        await p.startScheduler();
      });
      await timed(`kwok and ${p.nodeCount} kwok nodes Ready`, async () => {
        await crds;
        await p.startKwok();
        await p.createNodes();
        await p.waitForNodesReady();
      });
      if (network) {
        await runtimes;
        await pushed;
        // The enforcers need only the API server: they start beside the node agents, and are
        // bound to their queues before any pod of a test runs.
        await Promise.all([
          timed(`real nodes: kubelet, kube-proxy, CoreDNS until ${realNodes} nodes Ready and DNS answers`, () => p.startNodeAgents()),
          timed(`NetworkPolicy enforcers (kube-network-policies) on ${realNodes} nodes until they read their queues`, () => p.startPolicyEnforcers()),
        ]);
      }
      await p.waitForDefaultServiceAccount('default');
    } catch (err) {
      log(`start failed: ${(err as Error).message}; logs in ${join(dir, 'logs')}`);
      if (plane) await plane.stop({ keepDir: true });
      else if (network) releaseSlotSync(network.slot);
      throw err;
    }
    if (detached && network) markClaimDetached(network.slot);
    await plane.writeState();
    log(`cluster ready in ${((Date.now() - started) / 1000).toFixed(1)} s at ${plane.server} (kubeconfig ${plane.kubeconfigPath}): `
      + startTimes.map((t) => `${t.part} ${t.seconds.toFixed(1)} s`).join('; '));
    return plane;
  }

  /** Finds a detached control plane started in `dir`, if it is still running. */
  static async attach(dir: string, log?: (line: string) => void): Promise<ControlPlane | undefined> {
    let state: StateFile;
    try {
      state = JSON.parse(await readFile(join(dir, STATE_FILE), 'utf8')) as StateFile;
    } catch {
      return undefined;
    }
    const plane = new ControlPlane({
      binDir: state.binDir ?? (await buildBinaries(() => {}, { printOnly: true })), dir: resolve(dir), pki: await ensurePki(join(dir, 'pki')),
      ports: state.ports, ownsDir: false, detached: true, nodeCount: 0,
      log: log ?? ((line: string) => process.stderr.write(`[testbed] ${line}\n`)),
      host: state.host ?? '127.0.0.1',
      network: state.slot === undefined ? undefined : slotAddresses(state.slot, new Set(Object.keys(state.nodePids ?? {}).filter((k) => k.includes('/')).map((k) => k.split('/')[0])).size),
    });
    Object.assign(plane.pids, state.pids);
    Object.assign(plane.nodePids, state.nodePids ?? {});
    Object.assign(plane.images, state.images ?? {});
    Object.assign(plane.imageDigests, state.imageDigests ?? {});
    return plane;
  }

  /** True when every recorded process (real nodes' included) is alive and the apiserver answers /readyz. */
  async healthy(): Promise<boolean> {
    for (const [name, pid] of Object.entries(this.pids)) if (!pid || !runsBinary(pid, join(this.binDir, name))) return false;
    for (const pid of Object.values(this.nodePids)) if (!isAlive(pid)) return false;
    try {
      const res = await this.request('GET', '/readyz');
      return res.status === 200;
    } catch {
      return false;
    }
  }

  /**
   * Stops every component (TERM, then KILL after a grace period) and removes the state dir if
   * this control plane created it. Safe to call twice.
   */
  async stop(options: { keepDir?: boolean } = {}): Promise<void> {
    if (this.stopped) return;
    this.stopped = true;
    this.stopRealNodes();
    const order: ComponentName[] = ['kwok', 'kube-scheduler', 'kube-controller-manager', 'kube-apiserver', 'etcd'];
    for (const name of order) await this.stopComponent(name, 'SIGTERM');
    if (this.ownsDir && !options.keepDir) await rm(this.dir, { recursive: true, force: true });
    else await rm(join(this.dir, STATE_FILE), { force: true });
    // Only now: a test process that exits while this stop still waits (the runner does not wait
    // for its global teardown's timers) must still kill what is left. Each integration run left
    // its etcd behind for the next start to reap.
    liveAttachedPlanes.delete(this);
  }

  /**
   * Ends every process of the real nodes (pods, shims, containerd, kubelet, kube-proxy, CoreDNS)
   * and removes their namespaces, bridge, routes and cgroups; their mounts lived in the nodes'
   * own mount namespaces and are gone with the processes.
   */
  private stopRealNodes(): void {
    this.realNodes?.forget();
    if (this.network) releaseSlotSync(this.network.slot);
  }

  /** Kills kube-apiserver with SIGKILL (no graceful shutdown), leaving etcd and the rest running. */
  async killApiServer(): Promise<void> {
    await this.stopComponent('kube-apiserver', 'SIGKILL');
  }

  /** Starts kube-apiserver on the same port and etcd; resolves when /readyz answers 200. */
  async startApiServer(): Promise<void> {
    const p = this.pki;
    await this.spawnComponent('kube-apiserver', [
      `--advertise-address=${this.host}`,
      `--bind-address=${this.host}`,
      `--secure-port=${this.ports.apiserver}`,
      `--etcd-servers=${this.etcdUrl}`,
      `--tls-cert-file=${p.servingCert}`,
      `--tls-private-key-file=${p.servingKey}`,
      `--client-ca-file=${p.caCert}`,
      `--service-account-issuer=https://kubernetes.default.svc.cluster.local`,
      `--service-account-key-file=${p.serviceAccountPub}`,
      `--service-account-signing-key-file=${p.serviceAccountKey}`,
      `--service-cluster-ip-range=${this.network?.serviceCidr ?? LOOPBACK_SERVICE_CIDR}`,
      `--authorization-mode=Node,RBAC`,
      `--enable-admission-plugins=NodeRestriction`,
      `--allow-privileged=true`,
      `--kubelet-client-certificate=${p.clients['apiserver-kubelet-client'].cert}`,
      `--kubelet-client-key=${p.clients['apiserver-kubelet-client'].key}`,
      `--kubelet-certificate-authority=${p.caCert}`,
      // The node's IP, never its name: a name would be looked up in the machine's resolver.
      '--kubelet-preferred-address-types=InternalIP',
      `--watch-cache-sizes=${UNCACHED_RESOURCE}#0`,
      `--profiling=false`,
      `--v=1`,
    ]);
    await this.waitFor('kube-apiserver /readyz', async () => (await this.request('GET', '/readyz')).status === 200);
  }

  /**
   * Compacts etcd at its current revision (physically), so any resourceVersion older than now is
   * gone for reads that reach etcd. Returns the compacted revision.
   */
  async compactEtcd(): Promise<number> {
    const range = await fetch(`${this.etcdUrl}/v3/kv/range`, { method: 'POST', body: JSON.stringify({ key: Buffer.from('/').toString('base64') }) });
    const header = ((await range.json()) as { header: { revision: string } }).header;
    const revision = Number(header.revision);
    const res = await fetch(`${this.etcdUrl}/v3/kv/compaction`, { method: 'POST', body: JSON.stringify({ revision: String(revision), physical: true }) });
    if (!res.ok) throw new Error(`etcd compaction failed: ${res.status} ${await res.text()}`);
    return revision;
  }

  /** Runs the testbed's kubectl against this control plane as admin. */
  async kubectl(args: readonly string[], options: { input?: string } = {}): Promise<string> {
    return await new Promise((resolvePromise, reject) => {
      const child = execFile(join(this.binDir, 'kubectl'), ['--kubeconfig', this.kubeconfigPath, ...args], { maxBuffer: 256 * 1024 * 1024 }, (err, stdout, stderr) => {
        if (err) reject(new Error(`kubectl ${args.join(' ')} failed: ${stderr || err.message}`));
        else resolvePromise(stdout);
      });
      if (options.input !== undefined) child.stdin?.end(options.input);
    });
  }

  /** An admin HTTPS request to the apiserver; `body` objects are sent as JSON. */
  async request(method: string, path: string, body?: unknown, headers: Record<string, string> = {}): Promise<{ status: number; body: string }> {
    const admin = this.pki.clients.admin;
    const [ca, cert, key] = await Promise.all([readFile(this.pki.caCert), readFile(admin.cert), readFile(admin.key)]);
    const payload = body === undefined ? undefined : typeof body === 'string' ? body : JSON.stringify(body);
    return await new Promise((resolvePromise, reject) => {
      const req = httpsRequest(
        {
          host: this.host, port: this.ports.apiserver, path, method, ca, cert, key, timeout: 10_000,
          headers: { accept: 'application/json', ...(payload ? { 'content-type': 'application/json' } : {}), ...headers },
        },
        (res) => {
          const chunks: Buffer[] = [];
          res.on('data', (c: Buffer) => chunks.push(c));
          res.on('end', () => resolvePromise({ status: res.statusCode ?? 0, body: Buffer.concat(chunks).toString('utf8') }));
          res.on('error', reject);
        },
      );
      req.on('timeout', () => req.destroy(new Error(`${method} ${path} timed out`)));
      req.on('error', reject);
      req.end(payload);
    });
  }

  // --- components ------------------------------------------------------------------------------

  private async startEtcd(): Promise<void> {
    const peer = `http://127.0.0.1:${this.ports.etcdPeer}`;
    await this.spawnComponent('etcd', [
      '--name=testbed',
      `--data-dir=${join(this.dir, 'etcd')}`,
      `--listen-client-urls=${this.etcdUrl}`,
      `--advertise-client-urls=${this.etcdUrl}`,
      `--listen-peer-urls=${peer}`,
      `--initial-advertise-peer-urls=${peer}`,
      `--initial-cluster=testbed=${peer}`,
      // A test cluster needs no durability across host crashes; fsync dominates its latency.
      '--unsafe-no-fsync=true',
      '--log-level=warn',
    ]);
    await this.waitFor('etcd /health', async () => {
      const res = await fetch(`${this.etcdUrl}/health`, { signal: AbortSignal.timeout(5_000) });
      return res.ok && ((await res.json()) as { health?: string }).health === 'true';
    });
  }

  private async startControllerManager(): Promise<void> {
    await this.spawnComponent('kube-controller-manager', [
      `--kubeconfig=${join(this.dir, 'controller-manager.kubeconfig')}`,
      '--leader-elect=false',
      '--secure-port=0',
      `--service-account-private-key-file=${this.pki.serviceAccountKey}`,
      `--root-ca-file=${this.pki.caCert}`,
      '--use-service-account-credentials=true',
      '--controllers=*',
      // The defaults (20 qps) would make creating thousands of pods take minutes; a test
      // cluster on loopback can take far more.
      '--kube-api-qps=500',
      '--kube-api-burst=1000',
      '--concurrent-deployment-syncs=10',
      '--concurrent-replicaset-syncs=10',
      // kwok renews node leases from the same 2 busy cores as everything else; a missed
      // renewal under load must not mark every node and pod NotReady (kwok does not set pods
      // Ready again afterwards).
      '--node-monitor-grace-period=10m',
      '--v=1',
    ]);
  }

  private async startScheduler(): Promise<void> {
    await this.spawnComponent('kube-scheduler', [
      `--kubeconfig=${join(this.dir, 'scheduler.kubeconfig')}`,
      '--leader-elect=false',
      '--kube-api-qps=500',
      '--kube-api-burst=1000',
      '--secure-port=0',
      '--v=1',
    ]);
  }

  private async startKwok(): Promise<void> {
    await this.spawnComponent('kwok', [
      `--kubeconfig=${join(this.dir, 'kwok.kubeconfig')}`,
      '--manage-all-nodes=false',
      `--manage-nodes-with-annotation-selector=${KWOK_NODE_ANNOTATION}=fake`,
      `--cidr=${KWOK_POD_CIDR}`,
      '--node-ip=127.0.0.1',
      `--server-address=127.0.0.1:${this.ports.kwokServer}`,
      `--tls-cert-file=${this.pki.servingCert}`,
      `--tls-private-key-file=${this.pki.servingKey}`,
      `--enable-crds=${KWOK_CRDS.map((c) => c.kind).join(',')}`,
      // Node heartbeats: without leases kwok patches node status only when something changes it,
      // so after node-monitor-grace-period every node (and its pods) went NotReady in a cluster
      // left running (make cluster, long benchmarks).
      '--node-lease-duration-seconds=40',
    ]);
  }

  /**
   * Creates {@link KWOK_CRDS} (an existing one is left as is: the state dir's etcd may already
   * hold it), retrying until the apiserver takes requests, and waits until they are Established.
   */
  private async installKwokCrds(): Promise<void> {
    const base = '/apis/apiextensions.k8s.io/v1/customresourcedefinitions';
    await Promise.all(KWOK_CRDS.map(async (crd) => {
      const definition = await readFile(join(this.binDir, 'kwok-crds', crd.file), 'utf8');
      let last = '';
      await this.waitFor(`CRD ${crd.name} created`, async () => {
        const res = await this.request('POST', base, definition);
        last = `${res.status} ${res.body.slice(0, 200)}`;
        // Until it has finished starting the apiserver may refuse the connection or answer 5xx.
        return res.status === 201 || res.status === 409;
      }).catch((err: Error) => { throw new Error(`${err.message} (last answer: ${last})`); });
      await this.waitFor(`CRD ${crd.name} Established`, async () => {
        const res = await this.request('GET', `${base}/${crd.name}`);
        if (res.status !== 200) return false;
        const conditions = (JSON.parse(res.body) as { status?: { conditions?: Array<{ type: string; status: string }> } }).status?.conditions ?? [];
        return conditions.some((c) => c.type === 'Established' && c.status === 'True');
      });
    }));
  }

  private async createNodes(): Promise<void> {
    for (let i = 0; i < this.nodeCount; i++) {
      const name = `kwok-node-${i}`;
      const node = {
        apiVersion: 'v1',
        kind: 'Node',
        metadata: {
          name,
          annotations: { [KWOK_NODE_ANNOTATION]: 'fake', 'node.alpha.kubernetes.io/ttl': '0' },
          labels: { ...KWOK_NODE_SELECTOR, 'kubernetes.io/hostname': name, 'kubernetes.io/os': 'linux', 'kubernetes.io/arch': 'amd64' },
        },
        spec: { taints: [KWOK_TAINT] },
        status: {
          allocatable: { cpu: '32', memory: '256Gi', pods: '1000' },
          capacity: { cpu: '32', memory: '256Gi', pods: '1000' },
          daemonEndpoints: { kubeletEndpoint: { Port: this.ports.kwokServer } },
        },
      };
      const res = await this.request('POST', '/api/v1/nodes', node);
      if (res.status !== 201 && res.status !== 409) throw new Error(`creating node ${name}: ${res.status} ${res.body}`);
    }
  }

  private async waitForNodesReady(): Promise<void> {
    await this.waitFor(`${this.nodeCount} kwok nodes Ready`, async () => {
      const res = await this.request('GET', '/api/v1/nodes?labelSelector=type%3Dkwok');
      if (res.status !== 200) return false;
      const nodes = (JSON.parse(res.body) as { items: Array<{ status?: { conditions?: Array<{ type: string; status: string }> } }> }).items;
      const ready = nodes.filter((n) => n.status?.conditions?.some((c) => c.type === 'Ready' && c.status === 'True'));
      return ready.length >= this.nodeCount;
    });
  }

  // --- real nodes --------------------------------------------------------------------------------

  private async startRegistry(sources: Awaited<ReturnType<typeof testbedImageSources>>): Promise<void> {
    const network = this.network!;
    const { registry, images, digests } = await startRegistry({
      dir: this.dir, address: network.hostIp, detached: this.detached, cgroupProcs: daemonCgroupProcs(network), sources, log: this.log,
    });
    this.nodePids['registry'] = registry.pid;
    Object.assign(this.images, images);
    Object.assign(this.imageDigests, digests);
    await this.writeState();
  }

  /**
   * Pushes the Crowsnest image of a `make image` output dir to this testbed's registry again (a
   * running cluster reused by `make cluster` gets the image just built). Resolves to false when
   * there is no build or no registry.
   */
  async pushCrowsnestImage(crowsnestOut = join(testbedDir, '..', '.image')): Promise<boolean> {
    const source = crowsnestImageSource(crowsnestOut);
    if (!source || !this.network) return false;
    const pushed = await pushImage(join(this.binDir, 'crane'), `${this.network.hostIp}:${REGISTRY_PORT}`, source);
    this.images['crowsnest'] = pushed.reference;
    this.imageDigests['crowsnest'] = pushed.digest;
    await this.writeState();
    return true;
  }

  private async startRuntimes(images: { pause: string; registry: string }): Promise<void> {
    const network = this.network!;
    this.realNodes = new RealNodes({
      dir: this.dir, binDir: this.binDir, pki: this.pki, server: this.server, addresses: network, images,
      detached: this.detached, log: this.log,
      onSpawn: async (key, pid) => {
        this.nodePids[key] = pid;
        await this.writeState();
      },
    });
    await this.realNodes.startRuntimes();
  }

  /**
   * kubelets, kube-proxies and CoreDNS (with the kube-dns Service pointing at it and the RBAC it
   * reads with); resolves when every real node is Ready with its pod CIDR and DNS answers.
   */
  private async startNodeAgents(): Promise<void> {
    const network = this.network!;
    const nodes = this.realNodes!;
    await this.createClusterDns(network);
    await nodes.startNodeAgents();
    await this.waitFor(`${network.nodes.length} real nodes Ready`, async () => {
      nodes.checkAlive();
      const res = await this.request('GET', '/api/v1/nodes');
      if (res.status !== 200) return false;
      const items = (JSON.parse(res.body) as { items: Array<{ metadata: { name: string }; spec?: { podCIDR?: string }; status?: { conditions?: Array<{ type: string; status: string }> } }> }).items;
      let ready = 0;
      for (const node of network.nodes) {
        const item = items.find((i) => i.metadata.name === node.name);
        if (!item) continue;
        if (!item.spec?.podCIDR) {
          // Recorded for kube-proxy and users (`kubectl get node -o wide`); the CNI config
          // already uses it. Nothing allocates node CIDRs here (the controller-manager does not).
          const patched = await this.request('PATCH', `/api/v1/nodes/${node.name}`, { spec: { podCIDR: node.podCidr, podCIDRs: [node.podCidr] } }, { 'content-type': 'application/merge-patch+json' });
          if (patched.status !== 200) throw new Error(`setting the pod CIDR of ${node.name}: ${patched.status} ${patched.body}`);
        }
        if (item.status?.conditions?.some((c) => c.type === 'Ready' && c.status === 'True')) ready++;
      }
      return ready === network.nodes.length;
    });
    await this.waitFor('CoreDNS ready', async () => {
      nodes.checkAlive();
      return (await fetch(nodes.dnsReadyUrl!, { signal: AbortSignal.timeout(2_000) })).ok;
    });
  }

  /** kube-network-policies on every real node (testbed/netpol.ts), with the RBAC it reads and writes with. */
  private async startPolicyEnforcers(): Promise<void> {
    for (const [path, object] of netpolRbac()) {
      const res = await this.request('POST', path, object);
      if (res.status !== 201 && res.status !== 409) throw new Error(`creating ${path}: ${res.status} ${res.body}`);
    }
    await this.realNodes!.startPolicyEnforcers();
  }

  /** The pid of a real node's daemon (`component` of `node`, e.g. `crowsnest-real-0`, `netpol`), if it was started. */
  nodeDaemonPid(node: string, component: NodeComponent): number | undefined {
    return this.nodePids[`${node}/${component}`];
  }

  /**
   * `kube-system/kube-dns` at the slot's DNS address, served by the CoreDNS process on node 0
   * (a Service without selector and an EndpointSlice of our own), and the read access CoreDNS's
   * kubernetes plugin needs.
   */
  private async createClusterDns(network: SlotAddresses): Promise<void> {
    const first = network.nodes[0]!;
    const objects: Array<[string, unknown]> = [
      ['/apis/rbac.authorization.k8s.io/v1/clusterroles', {
        metadata: { name: 'crowsnest-testbed:coredns' },
        rules: [
          { apiGroups: [''], resources: ['endpoints', 'services', 'pods', 'namespaces'], verbs: ['list', 'watch'] },
          { apiGroups: ['discovery.k8s.io'], resources: ['endpointslices'], verbs: ['list', 'watch'] },
        ],
      }],
      ['/apis/rbac.authorization.k8s.io/v1/clusterrolebindings', {
        metadata: { name: 'crowsnest-testbed:coredns' },
        roleRef: { apiGroup: 'rbac.authorization.k8s.io', kind: 'ClusterRole', name: 'crowsnest-testbed:coredns' },
        subjects: [{ apiGroup: 'rbac.authorization.k8s.io', kind: 'User', name: 'crowsnest-testbed:coredns' }],
      }],
      ['/api/v1/namespaces/kube-system/services', {
        metadata: { name: 'kube-dns', labels: { 'k8s-app': 'kube-dns' } },
        spec: {
          clusterIP: network.dnsServiceIp,
          ports: [{ name: 'dns', port: 53, protocol: 'UDP' }, { name: 'dns-tcp', port: 53, protocol: 'TCP' }],
        },
      }],
      ['/apis/discovery.k8s.io/v1/namespaces/kube-system/endpointslices', {
        metadata: {
          name: 'kube-dns-coredns',
          labels: { 'kubernetes.io/service-name': 'kube-dns', 'endpointslice.kubernetes.io/managed-by': 'crowsnest-testbed' },
        },
        addressType: 'IPv4',
        endpoints: [{ addresses: [first.ip], conditions: { ready: true }, nodeName: first.name }],
        ports: [{ name: 'dns', port: 53, protocol: 'UDP' }, { name: 'dns-tcp', port: 53, protocol: 'TCP' }],
      }],
    ];
    for (const [path, object] of objects) {
      const res = await this.request('POST', path, object);
      if (res.status !== 201 && res.status !== 409) throw new Error(`creating ${path}: ${res.status} ${res.body}`);
    }
  }

  /** Waits until the controller-manager has created the `default` ServiceAccount of `namespace`. */
  async waitForDefaultServiceAccount(namespace: string): Promise<void> {
    await this.waitFor(`ServiceAccount ${namespace}/default`, async () =>
      (await this.request('GET', `/api/v1/namespaces/${namespace}/serviceaccounts/default`)).status === 200);
  }

  private async spawnComponent(name: ComponentName, args: string[]): Promise<void> {
    const logPath = join(this.dir, 'logs', `${name}.log`);
    const fd = openSync(logPath, 'a');
    const child = spawn(join(this.binDir, name), args, {
      stdio: ['ignore', fd, fd],
      detached: this.detached,
      env: { ...process.env, GOMAXPROCS: process.env.GOMAXPROCS ?? '2' },
    });
    closeSync(fd);
    const spawnError = new Promise<Error>((resolve) => child.once('error', resolve));
    if (child.pid === undefined) throw new Error(`could not start ${name}: ${(await spawnError).message}`);
    this.children.set(name, child);
    this.pids[name] = child.pid;
    // Unref'd even when attached: a running component must not keep the test process alive
    // (node --test waits for an idle event loop before its global teardown). The exit hook and
    // stop() still end it.
    child.unref();
    child.once('exit', (code, signal) => {
      if (this.children.get(name) === child) this.children.delete(name);
      if (!this.stopped && signal !== 'SIGKILL') this.log(`${name} exited (code ${code}, signal ${signal}); see ${logPath}`);
    });
    this.log(`started ${name} (pid ${child.pid}), log ${logPath}`);
    await this.writeState();
  }

  private async stopComponent(name: ComponentName, signal: NodeJS.Signals): Promise<void> {
    const pid = this.pids[name];
    if (!pid) return;
    delete this.pids[name];
    const child = this.children.get(name);
    const exited = child && child.exitCode === null && child.signalCode === null
      ? new Promise<void>((r) => child.once('exit', () => r()))
      : undefined;
    // A pid read back from a state file may have been reused since (after a reboot, say):
    // signal it only while it still runs our binary.
    if (!child && !runsBinary(pid, join(this.binDir, name))) return;
    try {
      if (child) child.kill(signal);
      else process.kill(pid, signal);
    } catch {
      return; // already gone
    }
    const deadline = Date.now() + STOP_GRACE_MS;
    while (isAlive(pid) && Date.now() < deadline) {
      if (exited) await Promise.race([exited, sleep(50)]);
      else await sleep(50);
      if (child && (child.exitCode !== null || child.signalCode !== null)) break;
    }
    if (isAlive(pid) && !(child && (child.exitCode !== null || child.signalCode !== null))) {
      try {
        if (child) child.kill('SIGKILL');
        else if (runsBinary(pid, join(this.binDir, name))) process.kill(pid, 'SIGKILL');
      } catch { /* gone */ }
      if (exited) await exited;
    }
    this.children.delete(name);
  }

  private async waitFor(what: string, probe: () => Promise<boolean>): Promise<void> {
    const deadline = Date.now() + READY_TIMEOUT_MS;
    let lastError = '';
    while (Date.now() < deadline) {
      if (this.stopped) throw new Error(`control plane stopped while waiting for ${what}`);
      for (const [name, pid] of Object.entries(this.pids)) {
        if (pid && !isAlive(pid)) throw new Error(`${name} exited while waiting for ${what}; see ${join(this.dir, 'logs', `${name}.log`)}`);
      }
      this.realNodes?.checkAlive();
      try {
        if (await probe()) return;
      } catch (err) {
        lastError = (err as Error).message;
      }
      await sleep(100);
    }
    throw new Error(`timed out after ${READY_TIMEOUT_MS / 1000} s waiting for ${what}${lastError ? ` (last error: ${lastError})` : ''}`);
  }

  private async writeKubeconfigs(): Promise<void> {
    const ca = await base64File(this.pki.caCert);
    const write = async (file: string, client: ClientName, user: string): Promise<void> => {
      const cert = await base64File(this.pki.clients[client].cert);
      const key = await base64File(this.pki.clients[client].key);
      const kubeconfig = {
        apiVersion: 'v1',
        kind: 'Config',
        clusters: [{ name: 'crowsnest-testbed', cluster: { server: this.server, 'certificate-authority-data': ca } }],
        users: [{ name: user, user: { 'client-certificate-data': cert, 'client-key-data': key } }],
        contexts: [{ name: 'crowsnest-testbed', context: { cluster: 'crowsnest-testbed', user, namespace: 'default' } }],
        'current-context': 'crowsnest-testbed',
      };
      // JSON is valid YAML, which every kubeconfig loader accepts.
      await writeFile(join(this.dir, file), JSON.stringify(kubeconfig, null, 2), { mode: 0o600 });
    };
    await write('kubeconfig', 'admin', 'admin');
    await write('controller-manager.kubeconfig', 'controller-manager', 'system:kube-controller-manager');
    await write('scheduler.kubeconfig', 'scheduler', 'system:kube-scheduler');
    await write('kwok.kubeconfig', 'kwok', 'kwok');
  }

  private async writeState(): Promise<void> {
    const state: StateFile = {
      ownerPid: process.pid, binDir: this.binDir, detached: this.detached, host: this.host, ports: this.ports, pids: this.pids,
      ...(this.network ? { slot: this.network.slot, nodePids: this.nodePids, images: this.images, imageDigests: this.imageDigests } : {}),
    };
    await writeFile(join(this.dir, STATE_FILE), JSON.stringify(state, null, 2));
  }

  /** Kills every component right now, synchronously (used from a process 'exit' handler). */
  killAllSync(): void {
    this.stopRealNodes();
    for (const [name, pid] of Object.entries(this.pids)) {
      if (!pid || !runsBinary(pid, join(this.binDir, name))) continue;
      try { process.kill(pid, 'SIGKILL'); } catch { /* gone */ }
    }
    if (this.ownsDir) rmSync(this.dir, { recursive: true, force: true });
  }
}

/** Runs testbed/build.sh (building what is missing) and returns the bin dir it prints. */
export async function buildBinaries(log: (line: string) => void, options: { printOnly?: boolean } = {}): Promise<string> {
  const script = join(testbedDir, 'build.sh');
  if (options.printOnly) return (await execFileAsync(script, ['--print'])).stdout.trim();
  return await new Promise((resolvePromise, reject) => {
    const child = spawn(script, [], { stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    child.stdout.on('data', (c: Buffer) => (out += c.toString()));
    child.stderr.on('data', (c: Buffer) => {
      for (const line of c.toString().split('\n')) if (line.trim()) log(line.replace(/^\[testbed [^\]]*\] /, ''));
    });
    child.on('error', reject);
    child.on('exit', (code) => {
      if (code === 0) resolvePromise(out.trim().split('\n').pop() ?? '');
      else reject(new Error(`testbed/build.sh failed with exit code ${code}`));
    });
  });
}

const liveAttachedPlanes = new Set<ControlPlane>();
let exitHookInstalled = false;

function registerExitKill(plane: ControlPlane): void {
  liveAttachedPlanes.add(plane);
  if (exitHookInstalled) return;
  exitHookInstalled = true;
  process.once('exit', () => {
    for (const p of liveAttachedPlanes) p.killAllSync();
  });
  for (const signal of ['SIGINT', 'SIGTERM', 'SIGHUP'] as const) {
    process.once(signal, () => {
      for (const p of liveAttachedPlanes) p.killAllSync();
      process.exit(128 + (signal === 'SIGINT' ? 2 : signal === 'SIGTERM' ? 15 : 1));
    });
  }
}

/**
 * A test process killed with SIGKILL cannot clean up after itself; the next start removes temp
 * state dirs whose owner is dead and kills the components they recorded.
 */
function reapOrphanedStateDirs(log: (line: string) => void): void {
  let entries: string[];
  try {
    entries = readdirSync(tmpdir()).filter((e) => e.startsWith(STATE_DIR_PREFIX));
  } catch {
    return;
  }
  for (const entry of entries) {
    const dir = join(tmpdir(), entry);
    try {
      const state = JSON.parse(readFileSync(join(dir, STATE_FILE), 'utf8')) as StateFile;
      if (state.detached || isAlive(state.ownerPid) || statSync(dir).uid !== process.getuid?.()) continue;
      if (state.slot !== undefined) releaseSlotSync(state.slot);
      for (const [name, pid] of Object.entries(state.pids)) {
        if (pid && state.binDir && runsBinary(pid, join(state.binDir, name))) process.kill(pid, 'SIGKILL');
      }
      rmSync(dir, { recursive: true, force: true });
      log(`reaped orphaned control plane in ${dir}`);
    } catch {
      // No state file yet (a start in progress elsewhere) or unreadable: leave it alone.
    }
  }
}

/**
 * Whether the detached testbed whose state dir is `dir` still runs (its API server does): a
 * network slot it claimed is not reaped while it does.
 */
function stateDirAlive(dir: string): boolean {
  try {
    const state = JSON.parse(readFileSync(join(dir, STATE_FILE), 'utf8')) as StateFile;
    const pid = state.pids['kube-apiserver'];
    return pid !== undefined && runsBinary(pid, join(state.binDir, 'kube-apiserver'));
  } catch {
    return false;
  }
}

/** True when `pid` is a live process executing `binaryPath` (so a reused pid is never signalled). */
function runsBinary(pid: number, binaryPath: string): boolean {
  try {
    return readlinkSync(`/proc/${pid}/exe`) === binaryPath;
  } catch {
    return false;
  }
}

function isAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

function sleep(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, ms));
}
