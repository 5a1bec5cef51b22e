import { isIP } from 'node:net';
import { availableParallelism } from 'node:os';
import { lookup } from 'node:dns/promises';
import { Logger } from '../log.js';
import { DEFAULT_LIMITS, type MobServer } from '../server/policy.js';
import type { FanoutHost } from '../server/fanout.js';
import { startServer, type Engine, type StartOptions } from '../start.js';
import { UV_MODES, type UvMode } from '../server/uv/mode.js';
import { parseCommand, parseHost, parseInteger, usageLine, UsageError, type Command, type ParsedFlags } from './args.js';
import type { WorkerPool } from '../scale/workers/pool.js';
import { snapshotOf } from '../metrics/snapshot.js';
import { parseHostPort, startMetricsServer, type MetricsServer, type MetricsSource } from '../metrics/server.js';
import { BUS_FLAGS, busOptionsFrom } from '../scale/bus/flags.js';
import type { Bus } from '../scale/bus/index.js';

export type { Engine, UvMode };

/** The frame limit's floor: below it a client's first ordinary message would close it. */
const MIN_MAX_FRAME = 1024;

// One table for mob serve's flags: its usage line, --help and parser all read it. A flag for
// a new feature is one entry here and one read in serveOptions().
export const SERVE: Command = {
  name: 'serve',
  summary: 'Run the multi-echo server: every frame a client sends goes to every client.',
  flags: {
    host: { type: 'string', value: 'HOST', default: '127.0.0.1', help: 'address to listen on (an IP, [::1] or a name)' },
    port: { type: 'string', value: 'PORT', default: '8000', help: 'TCP port; 0 asks the kernel for a free one' },
    'max-frame': { type: 'string', value: 'SIZE', default: '16MiB', help: 'largest frame a client may send (at least 1KiB)' },
    'max-conns': { type: 'string', value: 'N', default: '10000', help: 'clients served at once (the default is lowered to fit RLIMIT_NOFILE)' },
    'max-output': { type: 'string', value: 'SIZE', default: '64MiB', help: 'unread output after which a slow reader is disconnected' },
    'max-input-total': { type: 'string', value: 'SIZE', default: '1GiB', help: 'partial frames held for all clients together; past it the largest holder is closed' },
    'shutdown-timeout': { type: 'string', value: 'MS', default: '5000', help: 'ms to flush output on SIGTERM/SIGINT before cutting clients off' },
    'reuse-port': { type: 'boolean', help: 'SO_REUSEPORT, so several servers can share the port' },
    'listen-fd': { type: 'string', value: 'FD', help: 'serve an inherited listening socket (default under systemd: LISTEN_FDS)' },
    engine: { type: 'string', value: 'native|uv', help: 'raw epoll/kqueue loop, or node:net (default native)' },
    'uv-mode': { type: 'string', value: UV_MODES.join('|'), help: 'how the uv engine sends (default corked)' },
    trace: { type: 'string', value: 'text|json', help: 'print the native loop\'s timeline (--trace alone: text)' },
    workers: { type: 'string', value: '1|N|auto', default: '1', help: 'worker threads, one poller each, one server to clients (auto: one per core)' },
    metrics: { type: 'string', value: 'HOST:PORT', help: 'serve Prometheus text at /metrics and /healthz there' },
    ...BUS_FLAGS,
  },
};

/** The usage line in `mob --help` and the README (--trace's value is optional). */
export const SERVE_USAGE = usageLine(SERVE).replace('[--trace text|json]', '[--trace[=text|json]]');

export async function serve(argv: string[]): Promise<void> {
  // `--trace` alone means the text timeline; parseArgs has no optional values.
  argv = argv.map((arg) => (arg === '--trace' ? '--trace=text' : arg));
  const flags = parseCommand(SERVE, argv);
  const log = Logger.fromEnv();
  const trace = flags.oneOf('trace', ['text', 'json'] as const);
  const options = await serveOptions(flags, log);
  const busOptions = busOptionsFrom({ bus: flags.string('bus'), 'bus-retention': flags.string('bus-retention'), 'bus-backlog': flags.string('bus-backlog') });
  const workers = parseWorkers(flags.string('workers')!);
  if (workers > 1 && trace !== undefined) throw new UsageError('--trace follows one loop; it has no meaning with --workers');
  const metricsAt = flags.given('metrics') ? parseMetricsAddress(flags.string('metrics')!) : null;
  if (trace !== undefined) {
    if (options.engine === 'uv') throw new UsageError('--trace shows the native loop; it has no meaning with --engine uv');
    const { createTimeline } = await import('../trace/timeline.js');
    options.tracer = createTimeline(trace, (line) => process.stdout.write(line + '\n'));
  }
  let server: MobServer | WorkerPool;
  let bus: Bus | null = null;
  let metricsSource: MetricsSource;
  if (workers > 1) {
    if (options.listenFd !== undefined) throw new UsageError('--workers binds its own listeners; it does not take an inherited socket (--listen-fd, LISTEN_FDS)');
    // Loaded only here: the node:net engine alone must not need the addon. Each worker joins
    // the bus itself, with this process's node id (docs/scaling.md), before the pool is ready.
    const { WorkerPool } = await import('../scale/workers/pool.js');
    const engine = options.engine === 'uv' ? { engine: 'uv' as const, uvMode: options.uvMode ?? 'corked' } : { engine: 'native' as const };
    const serverOptions = {
      host: options.host!, port: options.port!, limits: { ...DEFAULT_LIMITS, ...options.limits },
      reusePort: options.reusePort, explicitMaxConns: options.explicitMaxConns, shutdownTimeoutMs: options.shutdownTimeoutMs,
    };
    const pool = await WorkerPool.start({ workers, server: serverOptions, engine, logLevel: (process.env.MOB_LOG ?? 'info').toLowerCase(), bus: busOptions }, log);
    pool.onFatal = () => {
      log.flushLimits();
      process.exit(1);
    };
    server = pool;
    metricsSource = pool;
  } else {
    const single = await startServer(options).catch((error: NodeJS.ErrnoException) => {
      // An inherited descriptor that is not a listening socket fails in the first call on it.
      if (options.listenFd === undefined || typeof error.code !== 'string' || !/^E[A-Z]+$/.test(error.code)) throw error;
      throw new Error(`cannot serve fd ${options.listenFd}: not an open listening socket (${error.code})`);
    }) as MobServer & FanoutHost;
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
  const { maxFrame, maxOutput, maxConns } = 'limits' in server ? server.limits : { ...DEFAULT_LIMITS, ...options.limits };
  log.info(`${server.engine} engine${workers > 1 ? ` × ${workers} workers` : ''}; max-frame ${maxFrame} B, max-output ${maxOutput} B, max-conns ${maxConns}${workers > 1 ? ' per worker' : ''}`);
  const cores = availableParallelism();
  // Workers past the cores this process may use (its CPU affinity: taskset, cpusets) take turns
  // on a core: more, smaller loop turns and context switches, for no gain (#8: two workers on
  // one core cost 1.13-1.26x one worker's CPU per delivered frame here, docs/scaling.md).
  if (workers > cores) log.warn(`${workers} workers on ${cores} core${cores === 1 ? '' : 's'} this process may use: the workers will take turns on a core, which costs more CPU per frame than ${cores} worker${cores === 1 ? '' : 's'} would (docs/scaling.md)`);
  if (metrics !== null) process.stdout.write(`metrics on http://${isIP(metrics.host) === 6 ? `[${metrics.host}]` : metrics.host}:${metrics.port}/metrics\n`);
  // Under --trace=json stdout is JSON lines only, so that `| jq` works: the line is a record too.
  if (trace === 'json') process.stdout.write(JSON.stringify({ type: 'listening', host, port }) + '\n');
  else process.stdout.write(`listening on ${isIP(host) === 6 ? `[${host}]` : host}:${port}\n`);
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

async function serveOptions(flags: ParsedFlags, log: Logger): Promise<StartOptions> {
  const listenFd = inheritedListener(flags, log);
  if (listenFd !== undefined) {
    for (const flag of ['host', 'port', 'reuse-port']) {
      if (flags.given(flag)) throw new UsageError(`--${flag} does not apply to an inherited socket (--listen-fd or systemd's LISTEN_FDS)`);
    }
  }
  return {
    listenFd,
    engine: flags.oneOf<Engine>('engine', ['native', 'uv']) ?? 'native',
    uvMode: flags.oneOf<UvMode>('uv-mode', UV_MODES) ?? 'corked',
    host: listenFd === undefined ? await resolveHost(parseHost(flags.string('host')!)) : '',
    port: flags.integer('port', 0, 65535)!,
    limits: {
      maxFrame: flags.bytes('max-frame', MIN_MAX_FRAME) ?? DEFAULT_LIMITS.maxFrame,
      maxOutput: flags.bytes('max-output', MIN_MAX_FRAME) ?? DEFAULT_LIMITS.maxOutput,
      maxConns: flags.integer('max-conns', 1) ?? DEFAULT_LIMITS.maxConns,
      maxInputTotal: flags.bytes('max-input-total', MIN_MAX_FRAME) ?? DEFAULT_LIMITS.maxInputTotal,
    },
    explicitMaxConns: flags.given('max-conns'),
    reusePort: flags.boolean('reuse-port'),
    shutdownTimeoutMs: flags.integer('shutdown-timeout', 0),
    log,
  };
}

/** First descriptor systemd passes (sd_listen_fds(3): SD_LISTEN_FDS_START). */
const SD_LISTEN_FDS_START = 3;

/**
 * The listening socket to serve instead of binding one: --listen-fd N, or systemd's socket
 * activation (LISTEN_FDS, for this process: LISTEN_PID). The variables are removed once read,
 * as sd_listen_fds(1) does, so a child process cannot mistake them for its own.
 */
function inheritedListener(flags: ParsedFlags, log: Logger): number | undefined {
  const explicit = flags.integer('listen-fd', 0, 0x7fff_ffff);
  const { LISTEN_FDS, LISTEN_PID } = process.env;
  delete process.env.LISTEN_FDS;
  delete process.env.LISTEN_PID;
  delete process.env.LISTEN_FDNAMES;
  if (explicit !== undefined) return explicit;
  if (LISTEN_FDS === undefined || Number(LISTEN_PID) !== process.pid) return undefined;
  const count = Number(LISTEN_FDS);
  if (!Number.isInteger(count) || count < 1) throw new Error(`LISTEN_FDS=${LISTEN_FDS}: systemd passed no socket`);
  if (count > 1) log.warn(`systemd passed ${count} sockets; serving the first (fd ${SD_LISTEN_FDS_START}) only`);
  return SD_LISTEN_FDS_START;
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
      // A pool without a cut-off of its own exits, as before, which resets its clients.
      if ('closeNow' in server) void server.closeNow();
      else process.exit(1);
      return;
    }
    const clients = 'workers' in server ? `the clients of ${server.workers} workers` : `${server.connections} client(s)`;
    log.info(`${signal}: no longer accepting; closing ${clients}`);
    // The server first (no more local batches), then the bus (publishes what it still keeps).
    void Promise.all([server.close().then(() => bus?.close()), metrics?.close()]).then(() => {
      log.flushLimits();
      log.info('stopped');
      process.exit(signals > 1 ? 1 : 0);
    }, (error: unknown) => {
      // A failed close still ends the process, with the reason, not an unhandled rejection.
      log.flushLimits();
      log.error(`shutdown failed: ${(error as Error).message}`);
      process.exit(1);
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
