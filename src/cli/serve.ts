import { isIP } from 'node:net';
import { lookup } from 'node:dns/promises';
import { Logger } from '../log.js';
import { DEFAULT_LIMITS, type MobServer } from '../server/policy.js';
import { startServer, type Engine, type StartOptions, type UvMode } from '../start.js';
import { parseCommand, parseHost, usageLine, UsageError, type Command, type ParsedFlags } from './args.js';

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
    'uv-mode': { type: 'string', value: 'corked|coalesced|plain', help: 'how the uv engine sends (default corked)' },
    trace: { type: 'string', value: 'text|json', help: 'print the native loop\'s timeline (--trace alone: text)' },
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
  if (trace !== undefined) {
    if (options.engine === 'uv') throw new UsageError('--trace shows the native loop; it has no meaning with --engine uv');
    const { createTimeline } = await import('../trace/timeline.js');
    options.tracer = createTimeline(trace, (line) => process.stdout.write(line + '\n'));
  }
  const server = await startServer(options).catch((error: NodeJS.ErrnoException) => {
    // An inherited descriptor that is not a listening socket fails in the first call on it.
    if (options.listenFd === undefined || typeof error.code !== 'string' || !/^E[A-Z]+$/.test(error.code)) throw error;
    throw new Error(`cannot serve fd ${options.listenFd}: not an open listening socket (${error.code})`);
  });
  // Handlers first: a supervisor may signal as soon as it reads the line below.
  stopOnSignals(server, log);
  const { host, port } = server.address;
  const { maxFrame, maxOutput, maxConns } = server.limits;
  log.info(`${server.engine} engine; max-frame ${maxFrame} B, max-output ${maxOutput} B, max-conns ${maxConns}`);
  // Under --trace=json stdout is JSON lines only, so that `| jq` works: the line is a record too.
  if (trace === 'json') process.stdout.write(JSON.stringify({ type: 'listening', host, port }) + '\n');
  else process.stdout.write(`listening on ${isIP(host) === 6 ? `[${host}]` : host}:${port}\n`);
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
    uvMode: flags.oneOf<UvMode>('uv-mode', ['corked', 'coalesced', 'plain']) ?? 'corked',
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
function stopOnSignals(server: MobServer, log: Logger): void {
  let signals = 0;
  const stop = (signal: NodeJS.Signals) => {
    if (++signals > 1) {
      log.warn(`${signal} again: not waiting for the shutdown deadline`);
      void server.closeNow();
      return;
    }
    log.info(`${signal}: no longer accepting; closing ${server.connections} client(s)`);
    void server.close().then(() => {
      log.flushLimits();
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
