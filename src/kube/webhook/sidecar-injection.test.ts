import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { describe, it } from 'node:test';
import { promisify } from 'node:util';
import { IN_POD_NODE_OPTIONS } from './sidecar-injection.ts';

const run = promisify(execFile);

describe('IN_POD_NODE_OPTIONS', () => {
  // Node refuses to start when NODE_OPTIONS holds a V8 flag it does not allow there (e.g.
  // --optimize-for-size): every injected sidecar would crash-loop, so the value is tried for real.
  it('is accepted by node in NODE_OPTIONS, and takes effect (no JIT, so no WebAssembly; the old space capped)', async () => {
    const { stdout } = await run(process.execPath, ['-e', "console.log(typeof WebAssembly, Math.round(require('node:v8').getHeapStatistics().heap_size_limit / 2 ** 20))"], {
      env: { PATH: process.env['PATH'], NODE_OPTIONS: IN_POD_NODE_OPTIONS },
    });
    const [webAssembly, heapLimitMiB] = stdout.trim().split(' ');
    assert.equal(webAssembly, 'undefined');
    // 48 MiB of old space plus the young generation (three 1 MiB semi-spaces' worth).
    assert.ok(Number(heapLimitMiB) >= 48 && Number(heapLimitMiB) < 56, `heap limit ${heapLimitMiB} MiB`);
  });
});
