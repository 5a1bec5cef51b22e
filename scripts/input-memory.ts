// --max-input-total, measured (issue #9): N clients each send the header of a large frame and
// part of its body, then leave. Prints the server's RSS before, while they hold it, and after
// they are gone, and how many the server dropped for --max-input-total.
//
//   node --import tsx scripts/input-memory.ts [--engine native|uv] [--clients 200] [--body 1MiB]
//        [--max-input-total BYTES] [--cli other/dist/cli/main.js]
import { connect, type Socket } from 'node:net';
import { once } from 'node:events';
import { parseArgs } from 'node:util';
import { writeLength } from '../src/protocol/frame.ts';
import { rssKiB } from './lib/proc.ts';
import { spawnServe } from './lib/serve-process.ts';
import { setTimeout as sleep } from 'node:timers/promises';

const { values } = parseArgs({
  options: {
    engine: { type: 'string', default: 'native' },
    clients: { type: 'string', default: '200' },
    body: { type: 'string', default: String(1024 * 1024) },
    'max-input-total': { type: 'string' },
    cli: { type: 'string' },
  },
});
const clients = Number(values.clients);
const bodyBytes = Number(values.body);
const args = ['--engine', values.engine!];
if (values['max-input-total']) args.push('--max-input-total', values['max-input-total']);
const server = await spawnServe(args, { env: { MOB_LOG: 'warn' }, cli: values.cli });
const pid = server.child.pid!;
const mib = (kib: number) => `${(kib / 1024).toFixed(0)} MiB`;
try {
  await sleep(500);
  const before = rssKiB(pid).total;
  const header = Buffer.alloc(8);
  writeLength(header, 0, 16 * 1024 * 1024);
  const body = Buffer.alloc(bodyBytes, 7);
  const sockets: Socket[] = [];
  for (let i = 0; i < clients; i++) {
    const socket = connect({ port: server.port, host: '127.0.0.1' });
    socket.on('error', () => {});
    await once(socket, 'connect');
    socket.write(header);
    socket.write(body);
    sockets.push(socket);
  }
  let peak = 0;
  for (let i = 0; i < 20; i++) {
    peak = Math.max(peak, rssKiB(pid).total);
    await sleep(100);
  }
  const dropped = sockets.filter((socket) => socket.destroyed || socket.readableEnded).length;
  sockets.forEach((socket) => socket.resetAndDestroy());
  let after = 0;
  for (let i = 0; i < 50; i++) {
    await sleep(100);
    after = rssKiB(pid).total;
  }
  const shed = (server.stderr().match(/--max-input-total/g) ?? []).length;
  console.log(
    `${values.engine}: ${clients} clients × (16 MiB header + ${mib(bodyBytes / 1024)} body): RSS ${mib(before)} before, ` +
      `${mib(peak)} while held (+${mib(peak - before)}), ${mib(after)} 5 s after they left (+${mib(after - before)}); ` +
      `${shed} dropped for --max-input-total (${dropped} closed seen by clients)`,
  );
} finally {
  server.child.kill('SIGKILL');
}
