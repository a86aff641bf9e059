/**
 * `make cluster` then `make cluster-down` (testbed/cli.ts up/down) leaves nothing behind: no
 * process, mount, network namespace, link, route, iptables/nft rule, cgroup or directory of the
 * cycled cluster. Other testbeds (this run's shared one, other worktrees' tests) may start and
 * stop meanwhile, so a difference is the cycled cluster's fault unless it carries another
 * testbed's slot.
 */
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { existsSync, readdirSync, readFileSync, readlinkSync, statSync } from 'node:fs';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { describe, it } from 'node:test';
import { ControlPlane } from '../../testbed/controlplane.ts';
import { queueBound } from '../../testbed/netpol.ts';
import { CGROUP_PARENT, SLOT_DIR } from '../../testbed/network.ts';
import { podLog, runPod } from '../../testbed/realpods.ts';
import { testbed } from './testbed.ts';

const run = promisify(execFile);
const repo = join(dirname(fileURLToPath(import.meta.url)), '..', '..');

/** What the host shows, as sets of lines. */
interface HostState {
  processes: Map<number, string>;
  mounts: Set<string>;
  netns: Set<string>;
  links: Set<string>;
  routes: Set<string>;
  iptables: Set<string>;
  nft: Set<string>;
  cgroups: Set<string>;
}

async function hostState(): Promise<HostState> {
  const processes = new Map<number, string>();
  for (const entry of readdirSync('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    try {
      processes.set(Number(entry), readFileSync(`/proc/${entry}/cmdline`, 'utf8').replaceAll('\0', ' ').trim());
    } catch { /* gone */ }
  }
  const lines = async (argv: string[]): Promise<Set<string>> =>
    new Set((await run(argv[0]!, argv.slice(1), { maxBuffer: 64 * 1024 * 1024 })).stdout.split('\n')
      // Counters change all the time; they are not rules.
      .map((l) => l.replace(/\[\d+:\d+\]/g, '').replace(/packets \d+ bytes \d+/g, '').trim()).filter(Boolean));
  const cgroups = new Set<string>();
  for (const hierarchy of readdirSync('/sys/fs/cgroup')) {
    const walk = (path: string, rel: string): void => {
      let entries: import('node:fs').Dirent[] = [];
      try { entries = readdirSync(path, { withFileTypes: true }); } catch { return; }
      for (const e of entries) if (e.isDirectory()) {
        cgroups.add(`${hierarchy}:${rel}/${e.name}`);
        walk(join(path, e.name), `${rel}/${e.name}`);
      }
    };
    walk(join('/sys/fs/cgroup', hierarchy, CGROUP_PARENT), `/${CGROUP_PARENT}`);
  }
  return {
    processes,
    mounts: new Set(readFileSync('/proc/self/mountinfo', 'utf8').split('\n').filter(Boolean).map((l) => `${l.split(' ').slice(3, 5).join(' ')} ${l.split(' - ')[1]}`)),
    netns: new Set(existsSync('/run/netns') ? readdirSync('/run/netns') : []),
    links: new Set([...(await lines(['ip', '-o', 'link', 'show']))].map((l) => /^\d+: ([^:]+):/.exec(l)?.[1] ?? l)),
    routes: await lines(['ip', 'route', 'show', 'table', 'all']),
    iptables: await lines(['iptables-save']),
    nft: await lines(['nft', 'list', 'ruleset']).catch(() => new Set<string>()),
    cgroups,
  };
}

function added<T>(before: Set<T>, after: Set<T>): T[] {
  return [...after].filter((x) => !before.has(x));
}

describe('make cluster / make cluster-down', () => {
  it('leaves no process, mount, namespace, link, route, rule, cgroup or directory behind after an up/down cycle with a pod running', { timeout: 600_000 }, async () => {
    await testbed(); // the shared cluster is up first, so its slot is not in the difference
    const dir = await mkdtemp(join(tmpdir(), 'crowsnest-cycle-'));
    await rm(dir, { recursive: true });
    const before = await hostState();
    const forwardingBefore = await readFile('/proc/sys/net/ipv4/ip_forward', 'utf8');
    const cli = (command: string): Promise<unknown> =>
      run(process.execPath, [join(repo, 'testbed', 'cli.ts'), command, '--dir', dir, '--kwok-nodes', '1', '--real-nodes', '2'], { cwd: repo, maxBuffer: 16 * 1024 * 1024 });
    let slot: number | undefined;
    try {
      await cli('up');
      const plane = await ControlPlane.attach(dir);
      assert.ok(plane && (await plane.healthy()), 'the detached cluster is healthy after up');
      slot = plane.network!.slot;
      // A running pod on each node: overlay mounts, a pod netns, veths, iptables rules of kube-proxy and portmap.
      for (const node of ['crowsnest-real-0', 'crowsnest-real-1']) {
        const command = ['sh', '-c', 'echo up; exec sleep 3600'];
        // A hostPort, so the portmap plugin writes its rules too.
        await runPod(plane, { namespace: 'default', name: `cycle-${node}`, node, image: plane.images['test']!, command, spec: { containers: [{ name: 'main', image: plane.images['test']!, command, ports: [{ containerPort: 8080, hostPort: 30080 }] }] } });
        assert.equal(await podLog(plane, 'default', `cycle-${node}`), 'up\n');
      }
      // Each node's NetworkPolicy enforcer reads its queue, so its process and rules are in the cycle too.
      for (const node of plane.network!.nodes) assert.ok(await queueBound(node), `${node.name}'s NetworkPolicy enforcer is bound to its queue`);
      const during = await hostState();
      assert.ok(during.netns.has(`crowsnest${slot}-real-0`), 'the node namespaces exist while up');
      assert.ok(during.links.has(`crowsnest${slot}`), 'the bridge exists while up');
    } finally {
      await cli('down');
    }
    const mine = (text: string): boolean => text.includes(dir) || new RegExp(`crowsnest${slot}(\\b|-|r)`).test(text) || text.includes(`${CGROUP_PARENT}/s${slot}`);
    const otherTestbed = (text: string): boolean => /crowsnest\d+/.test(text) && !mine(text);
    let leftovers: string[] = [];
    // The kernel frees a namespace's interfaces a moment after its last process has gone.
    for (let attempt = 0; attempt < 50; attempt++) {
      const after = await hostState();
      leftovers = [
        ...[...after.processes].filter(([pid, cmd]) => !before.processes.has(pid) && (mine(cmd) || processInSlot(pid, slot!))).map(([pid, cmd]) => `process ${pid}: ${cmd}`),
        ...added(before.mounts, after.mounts).filter((m) => !otherTestbed(m) && (mine(m) || SYSTEM_MOUNT_PLACES.test(m))).map((m) => `mount ${m}`),
        ...added(before.netns, after.netns).filter((n) => !otherTestbed(n)).map((n) => `netns ${n}`),
        ...added(before.links, after.links).filter((l) => !otherTestbed(l)).map((l) => `link ${l}`),
        ...added(before.routes, after.routes).filter((r) => !otherTestbed(r)).map((r) => `route ${r}`),
        ...added(before.iptables, after.iptables).map((r) => `iptables ${r}`),
        ...added(before.nft, after.nft).map((r) => `nft ${r}`),
        ...added(before.cgroups, after.cgroups).filter((c) => !otherTestbed(c.replace(/\/s(\d+)/, '/crowsnest$1')) || mine(c)).map((c) => `cgroup ${c}`),
      ];
      if (leftovers.length === 0) break;
      await new Promise((r) => setTimeout(r, 100));
    }
    assert.deepEqual(leftovers, []);
    assert.equal(existsSync(dir), false, 'the state dir is removed');
    assert.equal(existsSync(join(SLOT_DIR, `slot-${slot}.json`)), false, 'the slot is released');
    assert.equal(await readFile('/proc/sys/net/ipv4/ip_forward', 'utf8'), forwardingBefore, 'the host\'s forwarding is untouched');
  });
});

/**
 * Where a node's mounts would land on the host if they escaped its mount namespace (besides the
 * state dir): other tools' mounts elsewhere (another worktree's image tests, say) are not ours.
 */
const SYSTEM_MOUNT_PLACES = /^\S+ (\/run|\/var\/run|\/var\/lib|\/var\/log|\/etc|\/sys\/fs\/cgroup|\/opt)(\/|\s)/;

function processInSlot(pid: number, slot: number): boolean {
  try {
    if (readFileSync(`/proc/${pid}/cgroup`, 'utf8').includes(`${CGROUP_PARENT}/s${slot}/`)) return true;
    return readlinkSync(`/proc/${pid}/cwd`).includes(`crowsnest-cycle-`) && statSync(`/proc/${pid}`).isDirectory();
  } catch {
    return false;
  }
}
