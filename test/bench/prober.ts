/**
 * `make bench BENCH=prober`: the agent's cost with 10 and 100 peers beside a Go reference
 * (prober-agents.ts). `BENCH_PROBER_PEERS=10` runs one size.
 */
import { globalTeardown } from '../integration/testbed.ts';
import { type AgentCost, benchProberAgents, nodeFloor } from './prober-agents.ts';

function table(header: string[], rows: string[][]): void {
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => r[i]!.length)));
  const line = (cells: string[]): string => cells.map((c, i) => c.padStart(widths[i]!)).join('  ');
  console.log(line(header));
  for (const row of rows) console.log(line(row));
}

export async function benchProber(log: (line: string) => void): Promise<void> {
  const peers = (process.env['BENCH_PROBER_PEERS'] ?? '10,100').split(',').map(Number);
  let agents: AgentCost[] = [];
  // The runtime's timers are unref'd; this keeps the process alive while it only waits.
  const keepAlive = setInterval(() => {}, 1 << 30);
  try {
    agents = await benchProberAgents(log, peers);
  } finally {
    await globalTeardown();
    clearInterval(keepAlive);
  }
  const floor = await nodeFloor();
  const mib = (v: number): string => `${v.toFixed(1)} MiB`;
  const milli = (cores: number): string => `${(cores * 1000).toFixed(1)} m`;
  console.log('\nprober agent (crowsnest agent, Node 24) beside go-pinger (the same probes in plain Go; Goldpinger is not served by the Go proxy here)');
  console.log('per pod, median over the pods (max RSS in brackets); defaults: a round per peer every 10 s (HTTP ping + TCP connect), 1 s timeout');
  console.log('RSS includes the file-backed pages of the binary (shared by every pod on a node); anon is what each process adds. Target (issue): RSS <= 40 MiB\n');
  table(
    ['peers', 'pods', 'agent RSS', 'agent anon', 'agent CPU', 'go-pinger RSS', 'go-pinger anon', 'go-pinger CPU', 'CPU ratio'],
    agents.map((r) => [
      String(r.peers), String(r.pods),
      `${mib(r.agent.rssMiBMedian)} (${r.agent.rssMiBMax.toFixed(1)})`, mib(r.agent.anonMiBMedian), milli(r.agent.cpuCoresMedian),
      `${mib(r.goPinger.rssMiBMedian)} (${r.goPinger.rssMiBMax.toFixed(1)})`, mib(r.goPinger.anonMiBMedian), milli(r.goPinger.cpuCoresMedian),
      (r.agent.cpuCoresMedian / r.goPinger.cpuCoresMedian).toFixed(1),
    ]),
  );
  console.log(`\nNode ${process.version} alone, same binary: idle ${mib(floor.idle.rssMiB)} RSS (${mib(floor.idle.anonMiB)} anon); with node:net and node:tls loaded ${mib(floor.netTls.rssMiB)} (${mib(floor.netTls.anonMiB)} anon)`);
}
