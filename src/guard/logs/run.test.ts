import assert from 'node:assert/strict';
import { writeFile } from 'node:fs/promises';
import { describe, it } from 'node:test';
import { startLogReceiver } from '../../../test/helpers/guard-log-receiver.ts';
import { useScratchDir } from '../../../test/helpers/scratch.ts';
import { silentLogger } from '../../kube/logger-type.ts';
import { FakeContainerLog } from './fake-pod-logs.ts';
import { startLogsAgent } from './run.ts';

const scratch = useScratchDir('guard-run-');

describe('crowsnest logs-agent running', () => {
  it('sends batches to the guard endpoint, counts what a watch names, and exposes its metrics', async () => {
    const receiver = await startLogReceiver('127.0.0.1');
    const podLogsDir = await scratch.fresh();
    const tokenFile = scratch.path('token');
    await writeFile(tokenFile, 'agent-token');
    const log = await new FakeContainerLog(podLogsDir, 'shop', 'web-0', 'uid-0', 'app').create();
    receiver.receiver.sendAfterMs = 20;
    receiver.receiver.watches = [{ namespace: 'shop', pod: 'web-0', podUid: 'uid-0', containers: [], policy: 'errors', pattern: 'ERROR' }];
    const agent = await startLogsAgent({
      guardUrl: receiver.url, guardCa: { pem: receiver.caPem }, tokenFile, nodeName: 'node-a', podLogsDir, stateDir: await scratch.fresh(), batchBytes: 1 << 20, metricsBindAddress: '127.0.0.1:0',
    }, { logger: silentLogger });
    try {
      // Bounded by generous real time (the agent polls on real timers), not by a count of turns.
      const until = async (done: () => boolean): Promise<void> => {
        const giveUpAt = Date.now() + 60_000;
        while (!done() && Date.now() < giveUpAt) await new Promise((resolve) => setTimeout(resolve, 10));
      };
      await until(() => Object.keys(agent.agent.current.cursors).length === 1);
      await log.lines(10, { errorEvery: 5 });
      await until(() => receiver.receiver.total().lines === 10);
      assert.deepEqual(receiver.receiver.total(), { lines: 10, matched: 2 });
      assert.deepEqual([...receiver.tokens], ['agent-token']);
      const metrics = await (await fetch(`http://127.0.0.1:${agent.metricsPort}/metrics`)).text();
      assert.match(metrics, /^crowsnest_logs_agent_lines_read_total 10$/m);
      assert.match(metrics, /^crowsnest_logs_agent_watches 1$/m);
      assert.match(metrics, /^crowsnest_logs_agent_containers 1$/m);
      assert.equal((await fetch(`http://127.0.0.1:${agent.metricsPort}/healthz`)).status, 200);
    } finally {
      await agent.stop();
      await receiver.close();
    }
  });
});
