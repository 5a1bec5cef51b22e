// mob inside another program: start a server on either engine, connect two clients with
// node:net, send one frame, and watch it reach both (the sender too), then read the counters.
// `npx tsx examples/embed-server.ts [native|uv]`
import { connect, type Socket } from 'node:net';
import { once } from 'node:events';
import { startServer } from 'mob-echo/server';
import { encodeFrame, FrameDecoder } from 'mob-echo/protocol';

const engine = process.argv[2] === 'uv' ? 'uv' : 'native';
const server = await startServer({ engine, host: '127.0.0.1', port: 0, limits: { maxFrame: 64 * 1024 } });
console.log(`${server.engine} engine listening on ${server.address.host}:${server.address.port}`);

/** Resolves with the first frame body the socket receives. */
function firstFrame(socket: Socket): Promise<string> {
  return new Promise((resolve) => {
    const decoder = new FrameDecoder((body) => resolve(body.toString()));
    socket.on('data', (chunk: Buffer) => decoder.push(chunk));
  });
}

const alice = connect(server.address.port, '127.0.0.1');
const bob = connect(server.address.port, '127.0.0.1');
await Promise.all([once(alice, 'connect'), once(bob, 'connect')]);
// Wait until the server has both: a frame goes to the clients connected when it arrives.
while (server.connections < 2) await new Promise((resolve) => setTimeout(resolve, 5));

const received = Promise.all([firstFrame(alice), firstFrame(bob)]);
alice.write(encodeFrame(Buffer.from('hello from alice')));
const [atAlice, atBob] = await received;
console.log(`alice got "${atAlice}", bob got "${atBob}"`);
console.log(`stats: ${JSON.stringify(server.stats)}`);

alice.destroy();
bob.destroy();
await server.close();
