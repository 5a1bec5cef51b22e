import { isIP } from 'node:net';
import { lookup } from 'node:dns/promises';
import { Logger } from '../log.js';
import { DEFAULT_LIMITS, type MobServer, type ServerOptions } from '../server/policy.js';
import type { UvMode } from '../server/uv/server.js';
import { parse, parseBytes, parseInteger, UsageError } from './args.js';

export const SERVE_USAGE = `mob serve [--host 127.0.0.1] [--port 8000] [--max-frame 16MiB] [--max-conns 10000]
          [--max-output 64MiB] [--max-input-total 1GiB] [--shutdown-timeout 5000] [--reuse-port]
          [--engine native|uv] [--uv-mode corked|coalesced|plain] [--trace[=text|json]]`;

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
  const server = await createServer(engine, uvMode, options, log, trace);
  // Handlers first: a supervisor may signal as soon as it reads the line below.
  stopOnSignals(server, log);
  const { host, port } = server.address;
  const { maxFrame, maxOutput, maxConns } = server.limits;
  log.info(`${server.engine} engine; max-frame ${maxFrame} B, max-output ${maxOutput} B, max-conns ${maxConns}`);
  process.stdout.write(`listening on ${isIP(host) === 6 ? `[${host}]` : host}:${port}\n`);
}

async function createServer(
  engine: Engine, uvMode: UvMode, options: ServerOptions, log: Logger, trace: 'text' | 'json' | null,
): Promise<MobServer> {
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
