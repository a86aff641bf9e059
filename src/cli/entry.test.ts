import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { test } from 'node:test';

const entry = new URL('./entry.ts', import.meta.url).pathname;

/** Runs the CLI as a process whose stdout reader is gone before it writes anything. */
function runWithClosedStdout(args: readonly string[]): Promise<{ code: number | null; stderr: string }> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [entry, ...args], { stdio: ['ignore', 'pipe', 'pipe'] });
    // Closing our end now, long before the CLI has started: its first write finds no reader.
    child.stdout.destroy();
    let stderr = '';
    child.stderr.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
    child.once('error', reject);
    child.once('close', (code) => resolve({ code, stderr }));
  });
}

test('a stdout reader that went away ends the CLI quietly with 141, as SIGPIPE ends Unix tools', async () => {
  const { code, stderr } = await runWithClosedStdout(['--help']);
  assert.equal(code, 141);
  assert.equal(stderr, '');
});
