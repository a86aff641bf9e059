/**
 * One run of guard's log agent over a prepared pod log, in its own process so its CPU and peak RSS
 * are its own: `node logs-agent-child.ts <podLogsDir> <stateDir> <podUid> <expectedLines>`. The
 * agent starts with a watch whose cursor is at the file's beginning and a sink that accepts every
 * batch at once; it runs cycles (read → persist pending → send → commit) until it counted every
 * line. Prints one JSON line: wall and CPU milliseconds, peak RSS, lines and matches counted.
 */
import { mkdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { LogsAgent } from '../../src/guard/logs/agent.ts';
import { enableLinearRegExp } from '../../src/guard/logs/pattern.ts';
import { STATE_FILE, StateStore } from '../../src/guard/logs/state.ts';
import type { LogBatch, LogWatch } from '../../src/guard/contract.ts';
import { realClock } from '../../src/kube/clock.ts';
import { silentLogger } from '../../src/kube/logger-type.ts';

const [podLogsDir, stateDir, podUid, expectedText] = process.argv.slice(2) as [string, string, string, string];
const expected = Number(expectedText);
enableLinearRegExp();
const watch: LogWatch = { namespace: 'bench', pod: 'talker', podUid, containers: [], policy: 'errors', pattern: 'ERROR' };
await mkdir(stateDir, { recursive: true });
await writeFile(join(stateDir, STATE_FILE), JSON.stringify({ version: 1, node: 'bench', nextBatchId: 1, cursors: { [`${podUid}/app`]: { offset: 0 } }, watches: [watch] }));

let lines = 0;
let matched = 0;
let batches = 0;
const sink = {
  send: async (batch: LogBatch) => {
    batches++;
    for (const count of batch.counts) {
      lines += count.lines;
      matched += count.matched;
    }
    return { kind: 'answer' as const, answer: { accepted: true, watches: [watch], sendAfterMs: 1 } };
  },
};
const agent = new LogsAgent({ node: 'bench', podLogsDir, store: new StateStore(stateDir), sink, clock: realClock, logger: silentLogger });
await agent.load();
// What the process holds before reading: Node, and the type stripping of these .ts sources (the
// image ships JavaScript stripped at build, so a DaemonSet pod does not carry that part).
const rssLoadedBytes = process.memoryUsage.rss();
const cpuBefore = process.cpuUsage();
const started = performance.now();
while (lines < expected) await agent.cycle();
const wallMs = performance.now() - started;
const cpu = process.cpuUsage(cpuBefore);
process.stdout.write(`${JSON.stringify({ wallMs, cpuMs: (cpu.user + cpu.system) / 1000, maxRssBytes: process.resourceUsage().maxRSS * 1024, rssLoadedBytes, lines, matched, batches })}\n`);
