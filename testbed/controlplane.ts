/**
 * A real Kubernetes control plane on 127.0.0.1 for tests and for humans (`make cluster`):
 * etcd, kube-apiserver, kube-controller-manager, kube-scheduler and kwok (fake nodes and pod
 * lifecycle), built from Go modules by `testbed/build.sh`.
 *
 * Life cycle: {@link ControlPlane.start} builds what is missing, picks free loopback ports,
 * writes a PKI and kubeconfigs into a state dir, starts the components in dependency order and
 * waits for each to be ready; {@link ControlPlane.stop} stops them (TERM, then KILL) and removes
 * the state dir unless asked to keep it. Children started attached are also killed when this
 * process exits for any reason, so a failing test never leaves a control plane behind; a state
 * dir whose owner died without cleaning up is reaped by the next start.
 */
import { type ChildProcess, execFile, spawn } from 'node:child_process';
import { closeSync, openSync, readdirSync, readFileSync, readlinkSync, rmSync, statSync } from 'node:fs';
import { mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { request as httpsRequest } from 'node:https';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { base64File, type ClientName, ensurePki, type Pki } from './pki.ts';

const execFileAsync = promisify(execFile);
const testbedDir = dirname(fileURLToPath(import.meta.url));

/** Components in start order. */
export type ComponentName = 'etcd' | 'kube-apiserver' | 'kube-controller-manager' | 'kube-scheduler' | 'kwok';

export interface ControlPlaneOptions {
  /** State dir (PKI, etcd data, kubeconfigs, logs). Default: a new temp dir, removed on stop. */
  readonly dir?: string;
  /** Number of kwok fake nodes to create. Default 3. */
  readonly nodes?: number;
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
  readonly ports: Ports;
  readonly pids: Partial<Record<ComponentName, number>>;
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

  private readonly ownsDir: boolean;
  private readonly detached: boolean;
  private readonly log: (line: string) => void;
  private readonly children = new Map<ComponentName, ChildProcess>();
  private readonly pids: Partial<Record<ComponentName, number>> = {};
  private stopped = false;

  private constructor(init: {
    binDir: string; dir: string; pki: Pki; ports: Ports; ownsDir: boolean; detached: boolean;
    nodeCount: number; log: (line: string) => void;
  }) {
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

  /** https://127.0.0.1:<port> */
  get server(): string {
    return `https://127.0.0.1:${this.ports.apiserver}`;
  }

  get etcdUrl(): string {
    return `http://127.0.0.1:${this.ports.etcdClient}`;
  }

  /** Builds (if needed) and starts a control plane; resolves when it serves and the nodes are Ready. */
  static async start(options: ControlPlaneOptions = {}): Promise<ControlPlane> {
    const log = options.log ?? ((line: string) => process.stderr.write(`[testbed] ${line}\n`));
    const started = Date.now();
    reapOrphanedStateDirs(log);
    const binDir = await buildBinaries(log);
    const ownsDir = options.dir === undefined;
    const dir = options.dir ? resolve(options.dir) : await mkdtemp(join(tmpdir(), STATE_DIR_PREFIX));
    await mkdir(join(dir, 'logs'), { recursive: true });
    const pki = await ensurePki(join(dir, 'pki'));
    const ports: Ports = {
      etcdClient: await freePort(),
      etcdPeer: await freePort(),
      apiserver: await freePort(),
      kwokServer: await freePort(),
    };
    const plane = new ControlPlane({
      binDir, dir, pki, ports, ownsDir, detached: options.detached ?? false,
      nodeCount: options.nodes ?? 3, log,
    });
    if (!plane.detached) registerExitKill(plane);
    try {
      await plane.writeKubeconfigs();
      await plane.startEtcd();
      // kwok must find its CRDs served when it starts (its informers would back off otherwise).
      // They are created as soon as the apiserver takes requests, while it finishes starting.
      const crds = plane.installKwokCrds();
      crds.catch(() => {}); // awaited below; a failed start stops the plane, which ends this
      await plane.startApiServer();
      await plane.startControllerManager();
      await plane.startScheduler();
      await crds;
      await plane.startKwok();
      await plane.createNodes();
      await plane.waitForNodesReady();
      await plane.waitForDefaultServiceAccount('default');
    } catch (err) {
      log(`start failed: ${(err as Error).message}; logs in ${join(dir, 'logs')}`);
      await plane.stop({ keepDir: true });
      throw err;
    }
    await plane.writeState();
    log(`control plane ready in ${((Date.now() - started) / 1000).toFixed(1)} s: ${plane.server} (kubeconfig ${plane.kubeconfigPath})`);
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
    });
    Object.assign(plane.pids, state.pids);
    return plane;
  }

  /** True when every recorded component process is alive and the apiserver answers /readyz. */
  async healthy(): Promise<boolean> {
    for (const [name, pid] of Object.entries(this.pids)) if (!pid || !runsBinary(pid, join(this.binDir, name))) return false;
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
    liveAttachedPlanes.delete(this);
    const order: ComponentName[] = ['kwok', 'kube-scheduler', 'kube-controller-manager', 'kube-apiserver', 'etcd'];
    for (const name of order) await this.stopComponent(name, 'SIGTERM');
    if (this.ownsDir && !options.keepDir) await rm(this.dir, { recursive: true, force: true });
    else await rm(join(this.dir, STATE_FILE), { force: true });
  }

  /** Kills kube-apiserver with SIGKILL (no graceful shutdown), leaving etcd and the rest running. */
  async killApiServer(): Promise<void> {
    await this.stopComponent('kube-apiserver', 'SIGKILL');
  }

  /** Starts kube-apiserver on the same port and etcd; resolves when /readyz answers 200. */
  async startApiServer(): Promise<void> {
    const p = this.pki;
    await this.spawnComponent('kube-apiserver', [
      `--advertise-address=127.0.0.1`,
      `--bind-address=127.0.0.1`,
      `--secure-port=${this.ports.apiserver}`,
      `--etcd-servers=${this.etcdUrl}`,
      `--tls-cert-file=${p.servingCert}`,
      `--tls-private-key-file=${p.servingKey}`,
      `--client-ca-file=${p.caCert}`,
      `--service-account-issuer=https://kubernetes.default.svc.cluster.local`,
      `--service-account-key-file=${p.serviceAccountPub}`,
      `--service-account-signing-key-file=${p.serviceAccountKey}`,
      `--service-cluster-ip-range=10.96.0.0/16`,
      `--authorization-mode=Node,RBAC`,
      `--enable-admission-plugins=NodeRestriction`,
      `--allow-privileged=true`,
      `--kubelet-client-certificate=${p.clients['apiserver-kubelet-client'].cert}`,
      `--kubelet-client-key=${p.clients['apiserver-kubelet-client'].key}`,
      `--kubelet-certificate-authority=${p.caCert}`,
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
          host: '127.0.0.1', port: this.ports.apiserver, path, method, ca, cert, key, timeout: 10_000,
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
      '--cidr=10.244.0.1/16',
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
          labels: { type: 'kwok', 'kubernetes.io/hostname': name, 'kubernetes.io/os': 'linux', 'kubernetes.io/arch': 'amd64' },
        },
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
      const res = await this.request('GET', '/api/v1/nodes');
      if (res.status !== 200) return false;
      const nodes = (JSON.parse(res.body) as { items: Array<{ status?: { conditions?: Array<{ type: string; status: string }> } }> }).items;
      const ready = nodes.filter((n) => n.status?.conditions?.some((c) => c.type === 'Ready' && c.status === 'True'));
      return ready.length >= this.nodeCount;
    });
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
    const state: StateFile = { ownerPid: process.pid, binDir: this.binDir, detached: this.detached, ports: this.ports, pids: this.pids };
    await writeFile(join(this.dir, STATE_FILE), JSON.stringify(state, null, 2));
  }

  /** Kills every component right now, synchronously (used from a process 'exit' handler). */
  killAllSync(): void {
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
