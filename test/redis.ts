// The bus tests' Redis: a real redis-server (scripts/lib/redis-server.ts). Without redis-server
// installed the bus tests are skipped with a message that says how to install it; under CI=true
// a missing redis-server fails the run instead (RedisServer.start throws).
import { createServer, connect, type Server, type Socket } from 'node:net';
import { once } from 'node:events';
import { REDIS_INSTALL_HINT, redisServerPath } from '../scripts/lib/redis-server.ts';

export { freePort, RedisServer } from '../scripts/lib/redis-server.ts';

const inCi = process.env.CI === 'true';

/** `{ skip: redisSkip }` on every test that needs Redis: false when it can run (or under CI). */
export const redisSkip: string | false =
  redisServerPath !== null || inCi ? false : `redis-server not found: the bus tests need a real Redis; ${REDIS_INSTALL_HINT}`;

if (redisSkip) process.stderr.write(`\n*** ${redisSkip} ***\n\n`);

/**
 * A TCP relay between a node and Redis that a test can hold (bytes wait in the kernel and in
 * the relay, as on a stalled network path) or cut (every connection reset, new ones refused
 * until restored): one node's outage, while Redis and the other nodes go on.
 */
export class RedisPath {
  private readonly sockets = new Set<Socket>();
  private held = false;
  /** Hold only connections whose client has sent this (e.g. its CLIENT SETNAME), or all. */
  private heldOnly: string | null = null;
  private readonly sent = new Map<Socket, string>();
  private cut = false;
  private readonly waiting: Array<() => void> = [];

  private constructor(private readonly server: Server, readonly port: number) {}

  static async open(target: number): Promise<RedisPath> {
    const server = createServer();
    server.listen(0, '127.0.0.1');
    await once(server, 'listening');
    const path = new RedisPath(server, (server.address() as { port: number }).port);
    server.on('connection', (client) => path.accept(client, target));
    return path;
  }

  get url(): string {
    return `redis://127.0.0.1:${this.port}`;
  }

  hold(only: string | null = null): void {
    this.held = true;
    this.heldOnly = only;
  }

  release(): void {
    this.held = false;
    for (const flush of this.waiting.splice(0)) flush();
  }

  sever(): void {
    this.cut = true;
    for (const socket of this.sockets) socket.resetAndDestroy();
  }

  restore(): void {
    this.cut = false;
  }

  async close(): Promise<void> {
    this.sever();
    this.server.close();
    await once(this.server, 'close');
  }

  private accept(client: Socket, target: number): void {
    if (this.cut) return void client.resetAndDestroy();
    const upstream = connect({ host: '127.0.0.1', port: target });
    for (const [from, to] of [[client, upstream], [upstream, client]] as const) {
      this.sockets.add(from);
      from.on('data', (chunk: Buffer) => {
        if (from === client && (this.sent.get(client) ?? '').length < 4096) this.sent.set(client, (this.sent.get(client) ?? '') + chunk.toString('latin1'));
        const holding = this.held && (this.heldOnly === null || (this.sent.get(client) ?? '').includes(this.heldOnly));
        if (holding) this.waiting.push(() => to.write(chunk));
        else to.write(chunk);
      });
      from.on('error', () => to.destroy());
      from.on('close', () => {
        this.sockets.delete(from);
        this.sent.delete(from);
        to.destroy();
      });
    }
  }
}
