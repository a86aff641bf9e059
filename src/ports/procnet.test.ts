import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { SocketAddress } from 'node:net';
import { describe, test } from 'node:test';
import {
  DEFAULT_MAX_MALFORMED_DETAILS,
  MALFORMED_TEXT_MAX_CHARS,
  STATE_CLOSE,
  STATE_LISTEN,
  isListeningState,
  parseProcNet,
  type Family,
} from '../observe/procnet.ts';
import { countByKey, parseSs } from './testdata/ss.ts';

const fixture = (name: string): string => readFileSync(new URL(`testdata/${name}`, import.meta.url), 'utf8');

const HEADER = '  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode';

/** A table row as the kernel writes it; `local` and `remote` are `HEX:PORT`. */
function row(local: string, state = '0A', inode = 1000, uid = 0, remote?: string): string {
  const remoteEndpoint = remote ?? `${'0'.repeat(local.indexOf(':'))}:0000`;
  return `   0: ${local} ${remoteEndpoint} ${state} 00000000:00000000 00:00000000 00000000 ${String(uid).padStart(5)}        0 ${inode} 1 0000000000000000 100 0 0 10 0`;
}

/** The 32 hex digits /proc/net/tcp6 shows on a little-endian host for eight 16-bit groups. */
function littleEndianHex(groups: readonly number[]): string {
  const bytes = groups.flatMap((group) => [group >> 8, group & 0xff]);
  let hex = '';
  for (let word = 0; word < 16; word += 4) {
    for (let b = 3; b >= 0; b--) hex += bytes[word + b]!.toString(16).padStart(2, '0').toUpperCase();
  }
  return hex;
}

/** Deterministic pseudo-random numbers (mulberry32), so a failing case can be replayed. */
function random(seed: number): () => number {
  let state = seed >>> 0;
  return () => {
    state = (state + 0x6d2b79f5) >>> 0;
    let t = state;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 2 ** 32;
  };
}

describe('reading a real capture', () => {
  test('finds exactly the sockets ss -ltnup listed at the same moment', () => {
    const tables: readonly [string, 'tcp' | 'udp', Family][] = [
      ['proc-net-tcp', 'tcp', 'ipv4'],
      ['proc-net-tcp6', 'tcp', 'ipv6'],
      ['proc-net-udp', 'udp', 'ipv4'],
      ['proc-net-udp6', 'udp', 'ipv6'],
    ];
    const found = tables.flatMap(([file, protocol, family]) => {
      // Captured on x86-64: little-endian whatever machine runs the test.
      const table = parseProcNet(fixture(file), { family, keep: isListeningState, byteOrder: 'LE' });
      assert.equal(table.malformedCount, 0, `${file}: ${JSON.stringify(table.malformed)}`);
      return table.sockets.map((socket) => ({ ...socket, protocol }));
    });
    const listed = parseSs(fixture('ss-ltnup.txt'));
    assert.ok(listed.length >= 10, 'the capture holds the listeners capture.ts opens');
    assert.deepEqual(countByKey(found), countByKey(listed));
  });

  test('leaves out connected UDP sockets, established connections and TIME_WAIT', () => {
    const udp = parseProcNet(fixture('proc-net-udp'), { byteOrder: 'LE' });
    const connected = udp.sockets.filter((socket) => socket.state === 0x01);
    assert.equal(connected.length, 1, 'the capture has one connected UDP socket');
    const listening = parseProcNet(fixture('proc-net-udp'), { keep: isListeningState, byteOrder: 'LE' });
    assert.ok(!listening.sockets.some((socket) => socket.inode === connected[0]!.inode));

    const tcp = parseProcNet(fixture('proc-net-tcp'), { byteOrder: 'LE' });
    const tcpListening = parseProcNet(fixture('proc-net-tcp'), { keep: isListeningState, byteOrder: 'LE' });
    assert.ok(tcp.sockets.some((socket) => socket.state === 0x01) && tcp.sockets.some((socket) => socket.state === 0x06));
    assert.ok(tcpListening.sockets.every((socket) => socket.state === STATE_LISTEN));
    assert.equal(tcpListening.lines, tcp.lines, 'every row is read, kept or not');
  });

  test('reads dual-stack, IPv6-only, loopback and IPv4-mapped listeners as ss prints them', () => {
    const table = parseProcNet(fixture('proc-net-tcp6'), { family: 'ipv6', byteOrder: 'LE' });
    assert.deepEqual(new Set(table.sockets.map((socket) => socket.address)), new Set(['::', '::1', '::ffff:127.0.0.1']));
    assert.ok(table.sockets.every((socket) => socket.family === 'ipv6'));
  });
});

describe('addresses and numbers', () => {
  test('an IPv4 address reads in network order on little- and big-endian hosts, the port in host order', () => {
    const [little] = parseProcNet(row('0100007F:1F90'), { byteOrder: 'LE' }).sockets;
    assert.equal(little?.address, '127.0.0.1');
    assert.equal(little?.port, 8080);
    const [big] = parseProcNet(row('7F000001:1F90'), { byteOrder: 'BE' }).sockets;
    assert.equal(big?.address, '127.0.0.1');
    assert.equal(big?.port, 8080);
    const [lan] = parseProcNet(row('0A01A8C0:0016'), { byteOrder: 'LE' }).sockets;
    assert.equal(lan?.address, '192.168.1.10');
  });

  test('state, uid and inode are read; lower-case hex is accepted', () => {
    const [socket] = parseProcNet(row('0100007f:1f90', '07', 4_294_967_295, 65_534), { byteOrder: 'LE' }).sockets;
    assert.deepEqual(socket, { family: 'ipv4', address: '127.0.0.1', port: 8080, state: STATE_CLOSE, uid: 65_534, inode: 4_294_967_295 });
  });

  test('IPv6 addresses are written as inet_ntop writes them (checked against libuv on random addresses)', () => {
    const next = random(42);
    const examples: number[][] = [
      [0, 0, 0, 0, 0, 0, 0, 0],
      [0, 0, 0, 0, 0, 0, 0, 1],
      [0, 0, 0, 0, 0, 0xffff, 0x7f00, 1],
      [0, 0, 0, 0, 0, 0, 0x0102, 0x0304],
      [0xfe80, 0, 0, 0, 0, 0, 0, 1],
      [0x2001, 0xdb8, 0, 0, 0, 0, 0, 0],
      [1, 0, 0, 1, 0, 0, 0, 1],
      [1, 0, 1, 0, 1, 0, 1, 0],
    ];
    for (let i = 0; i < 500; i++) {
      // Mostly zeros, so that runs of zero groups of every length and position occur.
      examples.push(Array.from({ length: 8 }, () => (next() < 0.6 ? 0 : next() < 0.2 ? 0xffff : Math.floor(next() * 0x10000))));
    }
    for (const groups of examples) {
      const expected = new SocketAddress({ address: groups.map((g) => g.toString(16)).join(':'), family: 'ipv6' }).address;
      const line = row(`${littleEndianHex(groups)}:0050`);
      const [socket] = parseProcNet(line, { byteOrder: 'LE' }).sockets;
      assert.equal(socket?.address, expected, `groups ${groups.join(',')}`);
      assert.equal(socket?.family, 'ipv6');
    }
  });
});

describe('malformed lines', () => {
  const text = fixture('proc-net-tcp-malformed');

  test('are skipped and counted, each with its line number and reason; good rows around them are kept', () => {
    const table = parseProcNet(text, { family: 'ipv4', keep: isListeningState, byteOrder: 'LE', maxMalformedDetails: 100 });
    assert.deepEqual(
      table.sockets.map((socket) => `${socket.address}:${socket.port} ${socket.state} uid=${socket.uid} inode=${socket.inode}`),
      ['127.0.0.1:8080 10 uid=1000 inode=4242', '0.0.0.0:22 10 uid=0 inode=4250', '127.0.0.1:8089 7 uid=0 inode=4253'],
    );
    assert.deepEqual(
      table.malformed.map((line) => `${line.line}: ${line.reason}`),
      [
        '3: expected at least 10 fields, found 5',
        '4: bad local address',
        '5: bad local port',
        '6: bad state',
        '7: bad inode',
        '8: expected at least 10 fields, found 2',
        '9: not an ipv4 address',
        '10: bad slot number',
        '11: bad uid',
        '15: bad remote address',
        '16: expected at least 10 fields, found 3',
      ],
    );
    assert.equal(table.malformedCount, 11);
    assert.equal(table.lines, 15, 'data lines: all but the two headers and the blank line');
    assert.equal(table.malformed[6]?.text.trim().slice(0, 2), '7:', 'the line itself is quoted');
  });

  test('an IPv6 row is fine when the table family is not given', () => {
    const table = parseProcNet(text, { keep: isListeningState, byteOrder: 'LE' });
    assert.ok(table.sockets.some((socket) => socket.family === 'ipv6' && socket.address === '::1' && socket.port === 0x1f95));
    assert.equal(table.malformedCount, 10);
  });

  test('details are capped, the count is not, and quoted lines are cut', () => {
    const junk = Array.from({ length: 50 }, (_, i) => `junk ${i} ${'x'.repeat(1_000)}`).join('\n');
    const table = parseProcNet(`${HEADER}\n${junk}\n${row('0100007F:0050')}\n`, { byteOrder: 'LE' });
    assert.equal(table.malformedCount, 50);
    assert.equal(table.malformed.length, DEFAULT_MAX_MALFORMED_DETAILS);
    assert.ok(table.malformed.every((line) => line.text.length === MALFORMED_TEXT_MAX_CHARS));
    assert.equal(table.sockets.length, 1);
  });

  test('empty input, a header alone, and a last line without newline are all fine', () => {
    assert.deepEqual(parseProcNet(''), { sockets: [], lines: 0, malformedCount: 0, malformed: [] });
    assert.deepEqual(parseProcNet(`${HEADER}\n`), { sockets: [], lines: 0, malformedCount: 0, malformed: [] });
    assert.equal(parseProcNet(`${HEADER}\n${row('0100007F:0050')}`, { byteOrder: 'LE' }).sockets[0]?.port, 80);
  });

  test('no input makes the parser throw, and whatever it returns is well-formed (fuzzed)', () => {
    const next = random(7);
    const real = fixture('proc-net-tcp').split('\n').concat(fixture('proc-net-udp6').split('\n'));
    const alphabet = '0123456789ABCDEFabcdefxyz: \n\t\r-\u0000\u00e9';
    for (let i = 0; i < 2_000; i++) {
      let text: string;
      if (i % 2 === 0) {
        // A real line, mutated: characters replaced, deleted or inserted.
        const chars = [...real[Math.floor(next() * real.length)]!];
        for (let m = 0; m < 1 + next() * 4; m++) {
          const at = Math.floor(next() * (chars.length + 1));
          const char = alphabet[Math.floor(next() * alphabet.length)]!;
          const op = next();
          if (op < 0.4) chars[at] = char;
          else if (op < 0.7) chars.splice(at, 1);
          else chars.splice(at, 0, char);
        }
        text = chars.join('');
      } else {
        text = Array.from({ length: Math.floor(next() * 300) }, () => alphabet[Math.floor(next() * alphabet.length)]).join('');
      }
      const table = parseProcNet(text, { byteOrder: 'LE' });
      for (const socket of table.sockets) {
        assert.ok(socket.port >= 0 && socket.port <= 0xffff, `port of ${JSON.stringify(text)}`);
        assert.ok(socket.state >= 0 && socket.state <= 0xff);
        assert.ok(Number.isSafeInteger(socket.inode) && Number.isSafeInteger(socket.uid));
        assert.ok(socket.family === 'ipv4' ? /^(\d{1,3}\.){3}\d{1,3}$/.test(socket.address) : socket.address.includes(':'));
      }
      assert.equal(table.sockets.length + table.malformedCount <= table.lines, true);
    }
  });
});

test('only the states ss -l lists are kept: LISTEN and CLOSE (UNCONN)', () => {
  const states = Array.from({ length: 12 }, (_, i) => i + 1);
  const text = states.map((state, i) => row('0100007F:0050', state.toString(16).padStart(2, '0').toUpperCase(), i + 1)).join('\n');
  const table = parseProcNet(text, { keep: isListeningState, byteOrder: 'LE' });
  assert.deepEqual(table.sockets.map((socket) => socket.state), [STATE_CLOSE, STATE_LISTEN]);
});
