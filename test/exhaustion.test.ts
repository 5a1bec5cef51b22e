// Descriptors: a server that runs out of them must shed, not wedge, and a server that is
// churned must give every one back. Both run `mob serve` as a child, so its descriptor
// table and RLIMIT_NOFILE are its own.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { connect, type Socket } from 'node:net';
import { once } from 'node:events';
import { encodeFrame } from '../src/protocol/frame.ts';
import { exitOf, spawnServer, TestClient, waitFor, type CliServer } from './helpers.ts';
import { spawnServe } from '../scripts/lib/serve-process.ts';
import { fdCount } from '../scripts/lib/proc.ts';

const hasPrlimit = spawnSync('prlimit', ['--version']).status === 0;

/** `mob serve` with RLIMIT_NOFILE soft = hard = `nofile`: Node raises a soft limit to the hard
 *  one at startup, so only a lowered hard limit sticks. */
function spawnLimited(nofile: number, args: string[]): Promise<CliServer> {
  return spawnServe(args, {
    wrap: (node) =>
      hasPrlimit ? ['prlimit', `--nofile=${nofile}:${nofile}`, ...node] : ['bash', '-c', `ulimit -n ${nofile} && exec "$@"`, 'bash', ...node],
  });
}


interface FloodClient {
  socket: Socket;
  served: boolean;
  closed: boolean;
}

/** Opens `count` connections, each sending one frame. A client the server serves gets frames
 *  back; one it sheds is closed. Anything else is left hanging in the accept queue. */
async function flood(port: number, count: number): Promise<FloodClient[]> {
  const clients: FloodClient[] = [];
  const connecting: Promise<unknown>[] = [];
  for (let i = 0; i < count; i++) {
    const socket = connect({ port, host: '127.0.0.1' });
    const client: FloodClient = { socket, served: false, closed: false };
    socket.on('data', () => (client.served = true));
    socket.on('error', () => {});
    socket.on('close', () => (client.closed = true));
    connecting.push(once(socket, 'connect').then(() => socket.write(encodeFrame(Buffer.from(`flood ${i}`)))).catch(() => {}));
    clients.push(client);
  }
  await Promise.all(connecting);
  return clients;
}

/** A pair of fresh clients that exchange a frame: the server accepts and relays again. */
async function servedAgain(port: number, timeoutMs = 10_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const a = await TestClient.connect(port);
    const b = await TestClient.connect(port);
    try {
      await new Promise((resolve) => setTimeout(resolve, 50));
      if (!a.closed && !b.closed) {
        a.send('after the flood');
        const [frame] = await b.waitFrames(1, 5_000);
        assert.equal(frame!.toString(), 'after the flood');
        return;
      }
    } finally {
      // Resets: after a FIN alone a client stays a receiver (half-close) and keeps its descriptor.
      a.socket.resetAndDestroy();
      b.socket.resetAndDestroy();
    }
    if (Date.now() > deadline) throw new Error('the server never served new clients after the flood');
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
}

test('out of descriptors (EMFILE): the excess is shed at once, the server keeps serving, and accepts again once descriptors free up', { skip: process.platform !== 'linux' && 'needs /proc' }, async (t) => {
  const nofile = 128;
  // An explicit --max-conns above the limit is honoured: the server relies on EMFILE shedding.
  const server = await spawnLimited(nofile, ['--max-conns', '1000']);
  try {
    assert.match(server.stderr(), /--max-conns 1000 exceeds RLIMIT_NOFILE 128/);
    for (let round = 1; round <= 2; round++) {
      const clients = await flood(server.port, 3 * nofile);
      await waitFor(() => clients.every((c) => c.served || c.closed), `round ${round}: every flood client served or shed, none left queued`, 15_000);
      const served = clients.filter((c) => c.served && !c.closed).length;
      const shed = clients.filter((c) => c.closed).length;
      assert.ok(served > 0 && served < nofile, `round ${round}: ${served} served`);
      assert.ok(shed >= 2 * nofile, `round ${round}: ${shed} shed`);
      assert.equal(served + shed, clients.length);
      t.diagnostic(`round ${round}: ${clients.length} connections at RLIMIT_NOFILE ${nofile}: ${served} served, ${shed} shed, 0 left queued`);
      assert.equal(server.child.exitCode, null, 'the server is still up');
      assert.match(server.stderr(), /out of descriptors \(EMFILE\): closed \d+ queued connection/);
      for (const c of clients) c.socket.resetAndDestroy();
      await servedAgain(server.port);
    }
  } finally {
    server.child.kill('SIGTERM');
    assert.equal((await exitOf(server.child)).code, 0, server.stderr());
  }
});

test('without --max-conns, the default limit is fitted within a low RLIMIT_NOFILE', { skip: process.platform !== 'linux' && 'needs /proc' }, async () => {
  const server = await spawnLimited(256, []);
  try {
    assert.match(server.stderr(), /--max-conns 10000 exceeds RLIMIT_NOFILE 256 \(hard 256\); serving at most 192/);
    assert.match(server.stderr(), /max-conns 192/);
  } finally {
    server.child.kill('SIGTERM');
    await exitOf(server.child);
  }
});

test('no descriptor leaks: after churn with resets and mid-frame hang-ups, the fd count is back where it started', { skip: process.platform !== 'linux' && 'needs /proc' }, async (t) => {
  const server = await spawnServer([]);
  const pid = server.child.pid!;
  try {
    const steady = await TestClient.connect(server.port);
    steady.send('accepted?');
    await steady.waitFrames(1);
    const baseline = fdCount(pid);
    const frame = encodeFrame(Buffer.alloc(300, 7));
    let sent = 0;
    for (let wave = 0; wave < 6; wave++) {
      const sockets = await Promise.all(
        Array.from({ length: 50 }, async (_, i) => {
          const socket = connect({ port: server.port, host: '127.0.0.1' });
          socket.on('error', () => {});
          socket.resume(); // or its 'close' waits for a read of the server's FIN that never comes
          await once(socket, 'connect');
          return { socket, kind: (wave * 50 + i) % 4 };
        }),
      );
      for (const { socket, kind } of sockets) {
        if (kind === 0) {
          socket.write(frame); // a whole frame, then FIN
          sent++;
          socket.end();
        } else if (kind === 1) {
          socket.write(frame.subarray(0, 100)); // mid-frame, then FIN
          socket.end();
        } else if (kind === 2) {
          socket.write(frame.subarray(0, 5)); // mid-header, then RST
          socket.resetAndDestroy();
        } else {
          socket.resetAndDestroy(); // nothing, RST
        }
      }
      // FIN alone leaves a client a receiver (half-close); these close for good once the server
      // has relayed their frames (closing earlier, with the server's broadcasts unread, would
      // reset the connection and take their own frames with it), which the server notices
      // when it next writes to them.
      await steady.waitFrames(1 + sent, 15_000);
      for (const { socket, kind } of sockets) if (kind < 2) socket.destroy();
      await waitFor(() => sockets.every(({ socket }) => socket.closed), `wave ${wave}: every churn socket closed`);
    }
    // One more broadcast: the writes to the last wave's closed clients fail, and they go.
    steady.send('sweep');
    await steady.waitFrames(2 + sent, 15_000);
    await waitFor(() => fdCount(pid) === baseline, `the server's fd count to return to ${baseline} (now ${fdCount(pid)})`, 10_000);
    assert.equal(steady.closed, false);
    t.diagnostic(`300 churned connections (FIN, mid-frame FIN, mid-header RST, bare RST): server fds ${baseline} before, ${fdCount(pid)} after`);
    steady.destroy();
  } finally {
    server.child.kill('SIGTERM');
    await exitOf(server.child);
  }
});
