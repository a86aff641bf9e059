/**
 * Does the agent measure what the network does? A known delay is put on the path from pod A
 * (crowsnest-real-0) to pod B (crowsnest-real-1) by the user-space delaying relay
 * (testbed/delay: this kernel has no netem), and the agent's own RTTs (logged per probe, the
 * pod asking for it by annotation) must grow by that delay, ±5 %, at 5 ms and at 20 ms. The
 * relay is checked independently: the kernel's ICMP echo times (busybox ping in pod A) must grow
 * by the same amount. The floor (no relay) is printed with the rest.
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { delayPath } from '../../testbed/delay/relay.ts';
import { execInPod, podLog, type RealPod, waitForPod } from '../../testbed/realpods.ts';
import { crowsnestImage } from './prober-image.ts';
import { type ProberUnderTest, startProber } from './prober-run.ts';
import { testbed } from './testbed.ts';

const PHASE_MS = 40_000;
const SETTLE_MS = 3_000;
const TOLERANCE = 0.05;

interface ProbeLine { readonly time: number; readonly msg: string; readonly dest?: string; readonly method?: string; readonly rttUs?: number }

function median(values: readonly number[]): number {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted.length % 2 ? sorted[(sorted.length - 1) / 2]! : (sorted[sorted.length / 2 - 1]! + sorted[sorted.length / 2]!) / 2;
}

describe('prober accuracy against a known added delay', () => {
  let prober: ProberUnderTest;
  let namespace: string;
  let a: RealPod;
  let b: RealPod;

  before(async () => {
    const plane = await testbed();
    prober = await startProber({ agentImage: await crowsnestImage(plane) });
    namespace = await prober.newNamespace('prober-accuracy');
    const created = await plane.request('POST', `/apis/crowsnest.dev/v1alpha1/namespaces/${namespace}/networkprobers`, {
      apiVersion: 'crowsnest.dev/v1alpha1', kind: 'NetworkProber', metadata: { name: 'pair' },
      // A CPU request the scheduler of a busy 2-core testbed honours: with the default 10m (cpu.shares
      // 10) an agent waking for a 5 ms answer waits behind everything else on the machine.
      spec: {
        podSelector: { matchLabels: { app: 'pair' } }, pollingPeriod: '1s', timeout: '900ms', neighbours: 1,
        resources: { requests: { cpu: '500m', memory: '64Mi' }, limits: { memory: '128Mi' } },
      },
    });
    assert.equal(created.status, 201, created.body);
    for (const [name, node] of [['a', 'crowsnest-real-0'], ['b', 'crowsnest-real-1']] as const) {
      const res = await plane.request('POST', `/api/v1/namespaces/${namespace}/pods`, {
        apiVersion: 'v1', kind: 'Pod',
        metadata: { name, labels: { app: 'pair' }, annotations: { 'prober.crowsnest.dev/agent-log-level': 'debug' } },
        spec: { nodeName: node, terminationGracePeriodSeconds: 1, containers: [{ name: 'main', image: plane.images['test']!, command: ['sleep', '3600'] }] },
      });
      assert.equal(res.status, 201, res.body);
    }
    const ready = (p: RealPod): boolean => p.status.phase === 'Running' && (p.status.containerStatuses ?? []).every((s) => s.ready);
    a = await waitForPod(plane, namespace, 'a', ready, 'Running', 120_000);
    b = await waitForPod(plane, namespace, 'b', ready, 'Running', 120_000);
  });
  after(async () => {
    await prober?.stop();
  });

  /** Pod A's agent's RTTs to B by `method`, in ms, probed within [fromMs, toMs]. */
  async function agentRtts(method: string, fromMs: number, toMs: number): Promise<number[]> {
    const plane = await testbed();
    const lines = (await podLog(plane, namespace, 'a', 'net-prober')).split('\n').filter((l) => l.startsWith('{'));
    return lines.map((l) => JSON.parse(l) as ProbeLine)
      .filter((l) => l.msg === 'probe' && l.dest === 'b' && l.method === method && l.rttUs !== undefined && l.time >= fromMs && l.time <= toMs)
      .map((l) => l.rttUs! / 1000);
  }

  /** ICMP echo round trips from pod A to B, in ms (busybox ping: the kernel's timing, not ours). */
  async function pingRtts(): Promise<number[]> {
    const plane = await testbed();
    const { stdout, exitCode } = await execInPod(plane, namespace, 'a', ['ping', '-c', '30', '-i', '0.2', b.status.podIP!]);
    assert.equal(exitCode, 0, stdout);
    return [...stdout.matchAll(/time=([\d.]+) ms/g)].map((m) => Number(m[1]));
  }

  interface Phase { readonly http: number; readonly tcp: number; readonly ping: number; readonly samples: number; readonly spread: string }

  /** One phase: waits for samples, then returns the medians of the agent's two methods and of ping. */
  async function phase(): Promise<Phase> {
    const from = Date.now() + SETTLE_MS;
    await new Promise((resolve) => setTimeout(resolve, SETTLE_MS));
    const ping = median(await pingRtts());
    await new Promise((resolve) => setTimeout(resolve, Math.max(0, from + PHASE_MS - Date.now())));
    const to = Date.now();
    const [http, tcp] = [await agentRtts('http', from, to), await agentRtts('tcp', from, to)];
    assert.ok(http.length >= 20 && tcp.length >= 20, `enough samples: ${http.length} http, ${tcp.length} tcp`);
    const sorted = [...http].sort((x, y) => x - y);
    const at = (q: number): string => sorted[Math.floor(q * (sorted.length - 1))]!.toFixed(3);
    return { http: median(http), tcp: median(tcp), ping, samples: http.length, spread: `http min ${at(0)} p10 ${at(0.1)} p90 ${at(0.9)} ms` };
  }

  /** A phase with `delayMs` added by the relay; the relay's own account goes into `report`. */
  async function delayed(netns: string, delayMs: number, report: string[]): Promise<Phase> {
    const path = await delayPath({ netns, destination: b.status.podIP!, delayMs });
    try {
      return await phase();
    } finally {
      const relay = await path.stop();
      report.push(`relay ${delayMs} ms: released ${relay?.released ?? '?'} packets, late p50 ${relay?.lateUsP50 ?? '?'} µs, p99 ${relay?.lateUsP99 ?? '?'} µs`);
    }
  }

  it('measures 5 ms and 20 ms of added delay within ±5 %, by HTTP and TCP, as ping does', async () => {
    const plane = await testbed();
    const nodeNetns = plane.network!.nodes.find((n) => n.name === a.spec.nodeName)!.netns;
    const report: string[] = [];
    const direct = await phase();
    report.push(`without the relay: http ${direct.http.toFixed(3)} ms, tcp ${direct.tcp.toFixed(3)} ms, ping ${direct.ping.toFixed(3)} ms (${direct.samples} samples; ${direct.spread})`);
    // The floor: the same path through the relay, 0 ms added (the TUN hop costs a little of its own).
    const floor = await delayed(nodeNetns, 0, report);
    report.push(`floor, relay adding 0 ms: http ${floor.http.toFixed(3)} ms, tcp ${floor.tcp.toFixed(3)} ms, ping ${floor.ping.toFixed(3)} ms (${floor.spread})`);
    const failures: string[] = [];
    for (const delayMs of [5, 20]) {
      const measured = await delayed(nodeNetns, delayMs, report);
      const added = { http: measured.http - floor.http, tcp: measured.tcp - floor.tcp, ping: measured.ping - floor.ping };
      report.push(`+${delayMs} ms: http ${measured.http.toFixed(3)} ms (+${added.http.toFixed(3)}), tcp ${measured.tcp.toFixed(3)} ms (+${added.tcp.toFixed(3)}), ping ${measured.ping.toFixed(3)} ms (+${added.ping.toFixed(3)}) (${measured.spread})`);
      for (const [what, value] of Object.entries(added)) {
        if (Math.abs(value - delayMs) > TOLERANCE * delayMs) failures.push(`${what} added ${value.toFixed(3)} ms for ${delayMs} ms`);
      }
    }
    console.log(`[prober accuracy]\n  ${report.join('\n  ')}`);
    assert.deepEqual(failures, [], report.join('\n'));
  });
});
