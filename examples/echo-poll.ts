// An echo server on mob-echo's Poll, as mio's tcp_server example is on mio: one listener,
// edge-triggered readiness, read until EAGAIN, send back what came in. Run it with
// `npx tsx examples/echo-poll.ts` and talk to it with `nc 127.0.0.1 PORT`.
import { Events, Interest, Poll, Ready, errno, native } from 'mob-echo';

const LISTENER = 0;
const poll = new Poll();
const events = new Events(256);
const listener = native.listen('127.0.0.1', Number(process.env.PORT ?? 0), 0, false);
poll.registry.register(listener, LISTENER, Interest.READABLE);
const clients = new Map<number, { fd: number; unsent: Buffer | null }>(); // by token
const buffer = Buffer.allocUnsafe(64 * 1024);
let nextToken = 1;

poll.run(events, () => {
  for (let i = 0; i < events.length; i++) {
    const token = events.token(i);
    if (token === LISTENER) {
      // Edge-triggered: this event is the only notice of every connection now queued.
      for (let fd = native.accept(listener); fd >= 0; fd = native.accept(listener)) {
        clients.set(nextToken, { fd, unsent: null });
        poll.registry.register(fd, nextToken++, Interest.READABLE);
      }
      continue;
    }
    const client = clients.get(token);
    if (client === undefined) continue;
    if (events.flags(i) & Ready.WRITABLE && client.unsent) send(token, client, client.unsent);
    for (let n = 0; client.unsent === null && (n = native.read(client.fd, buffer, 0, buffer.length)) !== -errno.EAGAIN; ) {
      if (n <= 0) { close(token, client); break; } // 0: the peer closed; below 0: -errno
      send(token, client, buffer.subarray(0, n));
    }
  }
});

/** Writes what the socket takes; the rest waits for WRITABLE (reading pauses meanwhile). */
function send(token: number, client: { fd: number; unsent: Buffer | null }, bytes: Buffer): void {
  const n = native.write(client.fd, bytes, 0, bytes.length);
  if (n < 0 && n !== -errno.EAGAIN) return close(token, client);
  const rest = bytes.subarray(Math.max(n, 0));
  const waited = client.unsent !== null;
  client.unsent = rest.length > 0 ? Buffer.from(rest) : null;
  if (waited !== (client.unsent !== null)) poll.registry.reregister(client.fd, token, client.unsent ? Interest.WRITABLE : Interest.READABLE);
}

function close(token: number, client: { fd: number }): void {
  poll.registry.deregister(client.fd);
  native.close(client.fd);
  clients.delete(token);
}

process.once('SIGTERM', () => {
  poll.close();
  native.close(listener);
});
console.log(`listening on 127.0.0.1:${native.localAddress(listener).port}`);
