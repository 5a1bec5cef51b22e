import { isIP } from 'node:net';
import { availableParallelism } from 'node:os';
import { lookup } from 'node:dns/promises';
import { Logger } from '../log.js';
import { DEFAULT_LIMITS, type MobServer, type ServerOptions } from '../server/policy.js';
import type { UvMode } from '../server/uv/server.js';
import { parse, parseBytes, parseInteger, UsageError } from './args.js';
import type { WorkerPool } from '../scale/workers/pool.js';
import { snapshotOf } from '../metrics/snapshot.js';
import { parseHostPort, startMetricsServer, type MetricsServer, type MetricsSource } from '../metrics/server.js';
import { BUS_FLAGS, BUS_USAGE, busOptionsFrom } from '../scale/bus/flags.js';
import type { FanoutHost } from '../server/fanout.js';
import type { Bus } from '../scale/bus/index.js';

export const SERVE_USAGE = `mob serve [--host 127.0.0.1] [--port 8000] [--max-frame 16MiB] [--max-conns 10000]
          [--max-output 64MiB] [--max-input-total 1GiB] [--shutdown-timeout 5000] [--reuse-port]
          [--engine native|uv] [--uv-mode corked|coalesced|plain] [--trace[=text|json]]
          [--workers 1|N|auto] [--metrics HOST:PORT]
          ${BUS_USAGE}`;

export type Engine = 'native' | 'uv';

export async function serve(argv: string[]): Promise<void> {
  // `--trace` alone means the text timeline; parseArgs has no optional values.
  argv = argv.map((arg) => (arg === '--trace' ? '--trace=text' : arg));
  const { values } = parse('serve', argv, {
    host: { type: 'string', default: '127.0.0.1' },
    port: { type: 'string', default: '8000' },
    'max-frame': { type: 'string' },
    'max-conns': { type: 'string' },
    'max-output': { type: 'string' },
    'max-input-total': { type: 'string' },
    'shutdown-timeout': { type: 'string', default: '5000' },
    'reuse-port': { type: 'boolean', default: false },
    engine: { type: 'string', default: 'native' },
    'uv-mode': { type: 'string', default: 'corked' },
    trace: { type: 'string' },
    workers: { type: 'string', default: '1' },
    metrics: { type: 'string' },
    ...BUS_FLAGS,
  });
  const engine = oneOf<Engine>('engine', values.engine!, ['native', 'uv']);
  const uvMode = oneOf<UvMode>('uv-mode', values['uv-mode']!, ['corked', 'coalesced', 'plain']);
  const trace = values.trace === undefined ? null : oneOf('trace', values.trace, ['text', 'json'] as const);
  const log = Logger.fromEnv();
  const options: ServerOptions = {
    host: await resolveHost(values.host!),
    port: parseInteger('port', values.port!, 0, 65535),
    limits: {
      maxFrame: values['max-frame'] ? parseBytes('max-frame', values['max-frame']) : DEFAULT_LIMITS.maxFrame,
      maxOutput: values['max-output'] ? parseBytes('max-output', values['max-output']) : DEFAULT_LIMITS.maxOutput,
      maxConns: values['max-conns'] ? parseInteger('max-conns', values['max-conns'], 1) : DEFAULT_LIMITS.maxConns,
      maxInputTotal: values['max-input-total'] ? parseBytes('max-input-total', values['max-input-total']) : DEFAULT_LIMITS.maxInputTotal,
    },
    reusePort: values['reuse-port']!,
    explicitMaxConns: values['max-conns'] !== undefined,
    shutdownTimeoutMs: parseInteger('shutdown-timeout', values['shutdown-timeout']!, 0),
  };
  const busOptions = busOptionsFrom(values);
  const workers = parseWorkers(values.workers!);
  if (workers > 1 && trace !== null) throw new UsageError('--trace follows one loop; it has no meaning with --workers');
  const metricsAt = values.metrics === undefined ? null : parseMetricsAddress(values.metrics);
  let server: MobServer | WorkerPool;
  let bus: Bus | null = null;
  let metricsSource: MetricsSource;
  if (workers > 1) {
    // Loaded only here: the node:net engine alone must not need the addon. Each worker joins
    // the bus itself, with this process's node id (SCALE.md), before the pool is ready.
    const { WorkerPool } = await import('../scale/workers/pool.js');
    const pool = await WorkerPool.start({ workers, server: options, engine: engine === 'uv' ? { engine, uvMode } : { engine }, logLevel: (process.env.MOB_LOG ?? 'info').toLowerCase(), bus: busOptions }, log);
    pool.onFatal = () => process.exit(1);
    server = pool;
    metricsSource = pool;
  } else {
    const single = await createServer(engine, uvMode, options, log, trace);
    // On the bus before the 'listening on' line, so clients that wait for it miss no other node's frames.
    bus = busOptions === null ? null
      : await (await import('../scale/bus/index.js')).connectBus(single, busOptions, log).catch(async (error: Error) => {
        await single.close();
        throw error;
      });
    server = single;
    const joined = bus;
    metricsSource = { snapshots: async () => [snapshotOf(single, null, joined?.metrics() ?? null)], figures: () => ({ workers: 1, restarts: 0 }) };
  }
  const metrics = metricsAt === null ? null : await startMetricsServer(metricsAt.host, metricsAt.port, metricsSource, log);
  // Handlers first: a supervisor may signal as soon as it reads the line below.
  stopOnSignals(server, log, bus, metrics);
  const { host, port } = server.address;
  const { maxFrame, maxOutput, maxConns } = 'limits' in server ? server.limits : options.limits;
  log.info(`${server.engine} engine${workers > 1 ? ` × ${workers} workers` : ''}; max-frame ${maxFrame} B, max-output ${maxOutput} B, max-conns ${maxConns}${workers > 1 ? ' per worker' : ''}`);
  if (metrics !== null) process.stdout.write(`metrics on http://${isIP(metrics.host) === 6 ? `[${metrics.host}]` : metrics.host}:${metrics.port}/metrics\n`);
  process.stdout.write(`listening on ${isIP(host) === 6 ? `[${host}]` : host}:${port}\n`);
}

async function createServer(
  engine: Engine, uvMode: UvMode, options: ServerOptions, log: Logger, trace: 'text' | 'json' | null,
): Promise<MobServer & FanoutHost> {
  if (engine === 'uv') {
    if (trace !== null) throw new UsageError('--trace shows the native loop; it has no meaning with --engine uv');
    const { UvServer } = await import('../server/uv/server.js');
    return UvServer.listen(options, log, uvMode);
  }
  const { NativeServer } = await import('../server/native/server.js');
  const server = new NativeServer(options, log);
  if (trace !== null) {
    const { createTimeline } = await import('../trace/timeline.js');
    server.setTracer(createTimeline(trace, (line) => process.stdout.write(line + '\n')));
  }
  return server;
}

function oneOf<T extends string>(flag: string, value: string, allowed: readonly T[]): T {
  if (!(allowed as readonly string[]).includes(value)) throw new UsageError(`--${flag} must be one of ${allowed.join(', ')}, not '${value}'`);
  return value as T;
}

/** `--workers 1|N|auto`: auto is one per core the process may use. */
function parseWorkers(text: string): number {
  return text === 'auto' ? availableParallelism() : parseInteger('workers', text, 1, 1024);
}

function parseMetricsAddress(text: string): { host: string; port: number } {
  try {
    return parseHostPort(text);
  } catch (error) {
    throw new UsageError((error as Error).message);
  }
}

/** SIGTERM, SIGINT and SIGHUP stop the server gracefully (shutdown.ts); a second one cuts off
 *  whoever is still behind with a reset, as the deadline would, then exits 1. SIGHUP is a stop,
 *  not ignored: the terminal a foreground server writes its log to is gone, and nohup does not
 *  protect a Node process anyway (Node restores default signal dispositions at startup: under
 *  nohup it died with exit 129 and flushed nothing). */
function stopOnSignals(server: MobServer | WorkerPool, log: Logger, bus: { close(): Promise<void> } | null, metrics: MetricsServer | null): void {
  let signals = 0;
  const stop = (signal: NodeJS.Signals) => {
    if (++signals > 1) {
      log.warn(`${signal} again: not waiting for the shutdown deadline`);
      // The worker pool has no cut-off of its own yet: exit, as before, which resets its clients.
      if ('closeNow' in server) void server.closeNow();
      else process.exit(1);
      return;
    }
    const clients = 'workers' in server ? `the clients of ${server.workers} workers` : `${server.connections} client(s)`;
    log.info(`${signal}: no longer accepting; closing ${clients}`);
    // The server first (no more local batches), then the bus (publishes what it still keeps).
    void Promise.all([server.close().then(() => bus?.close()), metrics?.close()]).then(() => {
      log.info('stopped');
      process.exit(signals > 1 ? 1 : 0);
    });
  };
  process.on('SIGINT', stop);
  process.on('SIGTERM', stop);
  process.on('SIGHUP', stop);
}

async function resolveHost(host: string): Promise<string> {
  if (isIP(host) !== 0) return host;
  try {
    return (await lookup(host)).address;
  } catch {
    throw new Error(`cannot resolve --host ${host}`);
  }
}
