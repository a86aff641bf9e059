/**
 * `crowsnest ports scan` as a real process, with a listener whose process renamed itself to hold
 * an escape sequence and a newline (libuv sets the name with prctl(PR_SET_NAME), as any program
 * can): the table shows it escaped on its own line, and forges no line of its own.
 *
 *   node --test 'test/host/*.test.ts'
 */
import assert from 'node:assert/strict';
import { execFile, spawn } from 'node:child_process';
import { once } from 'node:events';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { test } from 'node:test';

const run = promisify(execFile);
const repo = join(dirname(fileURLToPath(import.meta.url)), '..', '..');

test('a process name holding ESC and a newline is printed escaped, on its own line', { skip: process.platform !== 'linux' && 'Linux only: reads /proc' }, async () => {
  // 15 bytes at most survive in /proc/<pid>/comm: the name and the forged second line.
  const child = spawn(process.execPath, ['-e', `
    process.title = '\\u001b[1mX\\ntcp 9';
    require('node:net').createServer().listen(0, '127.0.0.1', function () { console.log(this.address().port); });
    setTimeout(() => process.exit(0), 60_000);
  `], { stdio: ['ignore', 'pipe', 'inherit'] });
  try {
    const [chunk] = (await once(child.stdout!, 'data')) as [Buffer];
    const port = Number(chunk.toString().trim());
    const { stdout } = await run(join(repo, 'bin', 'crowsnest'), ['ports', 'scan'], { maxBuffer: 64 * 1024 * 1024 });
    // biome-ignore lint/suspicious/noControlCharactersInRegex: the test looks for a raw escape character
    assert.doesNotMatch(stdout, /\u001b/, 'no raw escape character reaches the terminal');
    const ours = stdout.split('\n').filter((line) => line.includes(` ${port} `) || line.includes(`:${port}`));
    assert.equal(ours.length, 1, stdout);
    assert.match(ours[0]!, /\\e\[1mX\\ntcp 9$/);
    assert.ok(!stdout.split('\n').some((line) => /^tcp 9/.test(line)), 'no forged line');
  } finally {
    child.kill('SIGKILL');
  }
});
