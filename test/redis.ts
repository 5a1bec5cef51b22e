// A real redis-server for the bus tests: started on a free loopback port with persistence off,
// stopped by PID. Without redis-server installed the bus tests are skipped with a message that
// says how to install it; under CI=true a missing redis-server fails the run instead.
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { createServer, connect, type Server, type Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { once } from 'node:events';

const INSTALL_HINT = 'install it with `sudo apt-get install redis-server` (Debian/Ubuntu) or `brew install redis` (macOS)';

function findRedisServer(): string | null {
  const found = spawnSync('sh', ['-c', 'command -v redis-server'], { encoding: 'utf8' });
  return found.status === 0 ? found.stdout.trim() : null;
}

const redisServerPath = findRedisServer();
const inCi = process.env.CI === 'true';

/** `{ skip: redisSkip }` on every test that needs Redis: false when it can run (or under CI). */
export const redisSkip: string | false =
  redisServerPath !== null || inCi ? false : `redis-server not found: the bus tests need a real Redis; ${INSTALL_HINT}`;

if (redisSkip) process.stderr.write(`\n*** ${redisSkip} ***\n\n`);

export async function freePort(): Promise<number> {
  const server = createServer();
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  const { port } = server.address() as { port: number };
  server.close();
  await once(server, 'close');
  return port;
}

export class RedisServer {
  private child: ChildProcess | null = null;
  private readonly dir = mkdtempSync(join(tmpdir(), 'mob-redis-'));

  private constructor(readonly port: number, private readonly extraArgs: string[]) {}

  get url(): string {
    return `redis://127.0.0.1:${this.port}`;
  }

  get pid(): number {
    return this.child?.pid ?? -1;
  }

  /** Starts redis-server on a free port; `extraArgs` e.g. ['--stream-node-max-entries', '2']. */
  static async start(extraArgs: string[] = []): Promise<RedisServer> {
    if (redisServerPath === null) {
      throw new Error(`redis-server not found and CI=true: .ci/run installs it; ${INSTALL_HINT}`);
    }
    for (let attempt = 0; ; attempt++) {
      const server = new RedisServer(await freePort(), extraArgs);
      try {
        await server.resume();
        return server;
      } catch (error) {
        server.cleanup();
        if (attempt >= 3) throw error;
      }
    }
  }

  /** (Re)starts the server on its port, with an empty dataset (no persistence). */
  async resume(): Promise<void> {
    if (this.child !== null) throw new Error('redis-server is already running');
    const child = spawn(redisServerPath!, [
      '--port', String(this.port), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no',
      '--dir', this.dir, '--daemonize', 'no', '--loglevel', 'notice', ...this.extraArgs,
    ], { stdio: ['ignore', 'pipe', 'pipe'] });
    this.child = child;
    let output = '';
    await new Promise<void>((resolve, reject) => {
      const timer = setTimeout(() => fail(new Error(`redis-server did not start in 10 s: ${output}`)), 10_000);
      const fail = (error: Error) => {
        clearTimeout(timer);
        child.kill('SIGKILL');
        this.child = null;
        reject(error);
      };
      child.stdout!.on('data', (chunk: Buffer) => {
        output += chunk;
        if (/Ready to accept connections/.test(output)) {
          clearTimeout(timer);
          resolve();
        }
      });
      child.once('exit', (code) => fail(new Error(`redis-server exited with ${code}: ${output}`)));
    });
    child.stdout!.resume();
    child.stderr!.resume();
  }

  /** Stops it by PID (SIGKILL: an outage, not a clean shutdown) and waits for the exit. */
  async stop(): Promise<void> {
    const child = this.child;
    if (child === null) return;
    this.child = null;
    if (child.exitCode !== null || child.signalCode !== null) return;
    const exited = once(child, 'exit');
    child.kill('SIGKILL');
    await exited;
  }

  async close(): Promise<void> {
    await this.stop();
    this.cleanup();
  }

  private cleanup(): void {
    rmSync(this.dir, { recursive: true, force: true });
  }
}

/**
 * A TCP relay between a node and Redis that a test can hold (bytes wait in the kernel and in
 * the relay, as on a stalled network path) or cut (every connection reset, new ones refused
 * until restored): one node's outage, while Redis and the other nodes go on.
 */
export class RedisPath {
  private readonly sockets = new Set<Socket>();
  private held = false;
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

  hold(): void {
    this.held = true;
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
        if (this.held) this.waiting.push(() => to.write(chunk));
        else to.write(chunk);
      });
      from.on('error', () => to.destroy());
      from.on('close', () => {
        this.sockets.delete(from);
        to.destroy();
      });
    }
  }
}
