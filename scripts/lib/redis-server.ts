// redis-server as a child process, for the bus tests and the bus benchmark: a free loopback
// port, persistence off, stopped by PID (never by name: other runs use the same binary).
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { once } from 'node:events';

export const REDIS_INSTALL_HINT = 'install it with `sudo apt-get install redis-server` (Debian/Ubuntu) or `brew install redis` (macOS)';

function findRedisServer(): string | null {
  const found = spawnSync('sh', ['-c', 'command -v redis-server'], { encoding: 'utf8' });
  return found.status === 0 ? found.stdout.trim() : null;
}

/** The redis-server binary on PATH, or null. */
export const redisServerPath = findRedisServer();

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
      throw new Error(`redis-server not found; ${REDIS_INSTALL_HINT}`);
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

