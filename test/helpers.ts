// Test clients on real loopback sockets (node:net), and waiting helpers with deadlines,
// so a broken server fails a test instead of hanging it.
import { connect, type Socket } from 'node:net';
import type { ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import { fileURLToPath } from 'node:url';
import { encodeFrame, FrameDecoder } from '../src/protocol/frame.ts';
import { Logger } from '../src/log.ts';
import { DEFAULT_LIMITS, type Limits, type MobServer } from '../src/server/policy.ts';
import { NativeServer } from '../src/server/native/server.ts';
import { cliPath, spawnServe, type ServeProcess } from '../scripts/lib/serve-process.ts';
import { UvServer, type UvMode } from '../src/server/uv/server.ts';

export const quietLog = new Logger('error', () => {});

/** Engines the server integration tests run against: the native loop and both node:net modes. */
export const ENGINES = ['native', 'uv-corked', 'uv-coalesced', 'uv-plain'] as const;
export type EngineName = (typeof ENGINES)[number];

export async function startServer(
  limits: Partial<Limits> = {}, host = '127.0.0.1', engine: EngineName = 'native',
): Promise<MobServer & { native: NativeServer }> {
  const options = { host, port: 0, limits: { ...DEFAULT_LIMITS, ...limits }, shutdownTimeoutMs: 1000 };
  if (engine !== 'native') {
    const server = await UvServer.listen(options, quietLog, engine.slice('uv-'.length) as UvMode);
    return Object.defineProperty(server, 'native', {
      get: () => { throw new Error(`${engine} has no native loop`); },
    }) as UvServer & { native: NativeServer };
  }
  const server = new NativeServer(options, quietLog);
  return Object.assign(server, { native: server });
}

/** Polls `condition` every few ms until it holds, or throws after `timeoutMs`. */
export async function waitFor(condition: () => boolean, what: string, timeoutMs = 10_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!condition()) {
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 2));
  }
}

export class TestClient {
  readonly frames: Buffer[] = [];
  closed = false;
  error: Error | null = null;
  private readonly decoder = new FrameDecoder((body) => this.frames.push(Buffer.from(body)));

  private constructor(readonly socket: Socket) {
    socket.on('data', (chunk: Buffer) => this.decoder.push(chunk));
    socket.on('error', (error) => (this.error = error));
    socket.on('close', () => (this.closed = true));
  }

  static async connect(port: number, host = '127.0.0.1'): Promise<TestClient> {
    const socket = connect({ port, host, noDelay: true });
    await once(socket, 'connect');
    return new TestClient(socket);
  }

  send(payload: Uint8Array | string): void {
    this.socket.write(encodeFrame(typeof payload === 'string' ? Buffer.from(payload) : payload));
  }

  writeRaw(bytes: Uint8Array): Promise<void> {
    return new Promise((resolve, reject) => this.socket.write(bytes, (e) => (e ? reject(e) : resolve())));
  }

  async waitFrames(count: number, timeoutMs = 10_000): Promise<Buffer[]> {
    await waitFor(() => this.frames.length >= count || this.closed, `${count} frames (have ${this.frames.length})`, timeoutMs);
    if (this.frames.length < count) throw new Error(`connection closed after ${this.frames.length} of ${count} frames`);
    return this.frames;
  }

  async waitClosed(timeoutMs = 10_000): Promise<void> {
    await waitFor(() => this.closed, 'the server to close the connection', timeoutMs);
  }

  destroy(): void {
    this.socket.destroy();
  }
}

/** Connects clients and waits until the server has accepted all of them (so none misses a frame). */
export async function connectAll(server: MobServer, count: number): Promise<TestClient[]> {
  const before = server.connections;
  const clients: TestClient[] = [];
  for (let i = 0; i < count; i++) clients.push(await TestClient.connect(server.address.port));
  await waitFor(() => server.connections >= before + count, `${count} connections accepted`);
  return clients;
}

export const repoRoot = fileURLToPath(new URL('..', import.meta.url));
export { cliPath };

export type CliServer = ServeProcess;

/** Runs `mob serve` from the build, waiting for its "listening on" line. */
export function spawnServer(args: string[], env: NodeJS.ProcessEnv = {}): Promise<CliServer> {
  return spawnServe(args, { env });
}

export function exitOf(child: ChildProcess, timeoutMs = 10_000): Promise<{ code: number | null; signal: NodeJS.Signals | null }> {
  return new Promise((resolve, reject) => {
    if (child.exitCode !== null || child.signalCode !== null) return resolve({ code: child.exitCode, signal: child.signalCode });
    const timer = setTimeout(() => {
      child.kill('SIGKILL');
      reject(new Error('process did not exit in time'));
    }, timeoutMs);
    child.once('exit', (code, signal) => {
      clearTimeout(timer);
      resolve({ code, signal });
    });
  });
}
