/**
 * `make bench BENCH=prober`: the webhook's admission latency at 100 creates/s beside a floor
 * webhook and no webhook (prober-admission.ts), the agent's cost with 10 and 100 peers beside
 * go-pinger and, given BENCH_GOLDPINGER_BINARY, Goldpinger (prober-agents.ts), and one agent on
 * loopback with and without V8's JIT (prober-agent-loopback.ts). `BENCH_PROBER_PEERS=10` runs one
 * size; `BENCH_PROBER=admission|agents|loopback` one part.
 */
import { globalTeardown } from '../integration/testbed.ts';
import { type AdmissionPass, benchProberAdmission } from './prober-admission.ts';
import { benchProberAgentLoopback, type LoopbackAgentCost } from './prober-agent-loopback.ts';
import { type AgentCost, benchProberAgents, nodeFloor } from './prober-agents.ts';
import { table } from './stats.ts';

export async function benchProber(log: (line: string) => void): Promise<void> {
  const peers = (process.env['BENCH_PROBER_PEERS'] ?? '10,100').split(',').map(Number);
  const part = process.env['BENCH_PROBER'];
  let agents: AgentCost[] = [];
  let admission: AdmissionPass[] | undefined;
  let loopback: LoopbackAgentCost[] = [];
  // The runtime's timers are unref'd; this keeps the process alive while it only waits.
  const keepAlive = setInterval(() => {}, 1 << 30);
  try {
    if (!part || part === 'admission') admission = await benchProberAdmission(log);
    if (!part || part === 'agents') agents = await benchProberAgents(log, peers);
    if (!part || part === 'loopback') loopback = await benchProberAgentLoopback(log, peers);
  } finally {
    await globalTeardown();
    clearInterval(keepAlive);
  }
  if (admission) {
    const ms = (v: number | undefined): string => (v === undefined ? '' : `${v.toFixed(2)} ms`);
    const pair = (a: number | undefined, b: number | undefined): string => (a === undefined ? '–' : `${ms(a)} / ${ms(b)}`);
    console.log('\nprober webhook: 1,000 pod creates at 100/s per pass; the webhooks each in a process of their own (crowsnest operator --controllers prober; the floor: our server allowing everything)');
    console.log('the API server\'s histogram starts at 5 ms: its quantiles below that are interpolated within [0, 5 ms]; our server\'s histogram has buckets from 0.5 ms; CPU and event-loop delay are the webhook process\'s\n');
    table(
      ['pass', 'creates', 'failed', 'injected', 'API server: calls <= 5 ms', 'webhook p50 / p99 (API server)', 'our server p50 / p99', 'create p50 / p99 (client)', 'TLS connections', 'CPU per call', 'event loop p99 / max', 'target'],
      admission.map((a) => [
        a.label, String(a.creates), String(a.failures), a.injected === undefined ? '' : String(a.injected),
        a.apiserver ? `${(a.apiserver.atMost5ms * 100).toFixed(1)} % of ${a.apiserver.calls}` : '–',
        pair(a.apiserver?.p50Ms, a.apiserver?.p99Ms), pair(a.server?.p50Ms, a.server?.p99Ms), pair(a.clientP50Ms, a.clientP99Ms),
        a.process ? String(a.process.connections) : '–', a.process ? `${ms(a.process.cpuMsPerCall)} (${(a.process.cpuCores * 1000).toFixed(0)} m)` : '–',
        pair(a.process?.eventLoopP99Ms, a.process?.eventLoopMaxMs), a.label === 'prober webhook' ? 'p99 < 5 ms' : '',
      ]),
    );
  }
  const mib = (v: number): string => `${v.toFixed(1)} MiB`;
  const milli = (cores: number): string => `${(cores * 1000).toFixed(1)} m`;
  if (loopback.length > 0) {
    console.log('\nprober agent on loopback (crowsnest agent, the image\'s JavaScript): one agent, N peers served by one local ping server, a round per peer every 10 s');
    console.log('the injected NODE_OPTIONS, then the same with V8\'s JIT on; measured one after the other on the same machine\n');
    table(['peers', 'NODE_OPTIONS', 'RSS', 'anon', 'file', 'CPU'], loopback.map((r) => [
      String(r.peers), r.nodeOptions, mib(r.rssMiB), mib(r.anonMiB), mib(r.fileMiB), milli(r.cpuCores),
    ]));
  }
  if (agents.length === 0) return;
  const floor = await nodeFloor();
  const measured = agents.some((r) => r.goldpinger) ? 'Goldpinger (BENCH_GOLDPINGER_BINARY) and ' : '';
  console.log(`\nprober agent (crowsnest agent, Node 24) beside ${measured}go-pinger (the same probes in plain Go), in the same pods`);
  if (!measured) console.log('Goldpinger was not measured: set BENCH_GOLDPINGER_BINARY to its binary');
  console.log(`per pod, median over the pods (max in brackets); defaults: a round per peer every 10 s (HTTP ping + TCP connect), 1 s timeout${measured ? '; Goldpinger: HTTP ping per peer and a pod list every 10 s, 1 s timeout' : ''}`);
  console.log('RSS includes the file-backed pages of the binary (shared by every pod on a node); anon is what each process adds; working set is the container\'s memory cgroup as the kubelet counts it (usage - inactive file). Target (issue): RSS <= 40 MiB\n');
  const kinds = [['crowsnest agent', 'agent'], ['go-pinger', 'goPinger'], ['Goldpinger', 'goldpinger']] as const;
  table(
    ['peers', 'pods', 'process', 'RSS', 'anon', 'working set', 'CPU', 'agent CPU / its CPU'],
    agents.flatMap((r) => kinds.flatMap(([label, key]) => {
      const cost = r[key];
      if (!cost) return [];
      return [[
        String(r.peers), String(r.pods), label, `${mib(cost.rssMiBMedian)} (${cost.rssMiBMax.toFixed(1)})`, mib(cost.anonMiBMedian),
        `${mib(cost.workingSetMiBMedian)} (${cost.workingSetMiBMax.toFixed(1)})`, milli(cost.cpuCoresMedian),
        key === 'agent' ? '' : (r.agent.cpuCoresMedian / cost.cpuCoresMedian).toFixed(1),
      ]];
    })),
  );
  for (const r of agents) {
    if (r.goldpinger) console.log(`Goldpinger, ${r.peers} peers: ${r.goldpinger.pings.made - r.goldpinger.pings.failed} of ${r.goldpinger.pings.made} pings succeeded while measured (${r.goldpinger.pings.pods} pods' /metrics); ${r.goldpinger.pings.perRoundMedian.toFixed(1)} pings per pod per 10 s (median)`);
  }
  console.log(`\nNode ${process.version} alone, same binary: idle ${mib(floor.idle.rssMiB)} RSS (${mib(floor.idle.anonMiB)} anon); with node:net and node:tls loaded ${mib(floor.netTls.rssMiB)} (${mib(floor.netTls.anonMiB)} anon)`);
}
