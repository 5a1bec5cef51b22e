import { isIP } from 'node:net';
import { lookup } from 'node:dns/promises';
import { Logger } from '../log.js';
import { DEFAULT_LIMITS, type MobServer, type ServerOptions } from '../server/policy.js';
import { parse, parseBytes, parseInteger } from './args.js';

export const SERVE_USAGE = `mob serve [--host 127.0.0.1] [--port 8000] [--max-frame 16MiB] [--max-conns 10000]
          [--max-output 64MiB] [--shutdown-timeout 5000] [--reuse-port]`;

export async function serve(argv: string[]): Promise<void> {
  const { values } = parse('serve', argv, {
    host: { type: 'string', default: '127.0.0.1' },
    port: { type: 'string', default: '8000' },
    'max-frame': { type: 'string' },
    'max-conns': { type: 'string' },
    'max-output': { type: 'string' },
    'shutdown-timeout': { type: 'string', default: '5000' },
    'reuse-port': { type: 'boolean', default: false },
  });
  const log = Logger.fromEnv();
  const options: ServerOptions = {
    host: await resolveHost(values.host!),
    port: parseInteger('port', values.port!, 0, 65535),
    limits: {
      maxFrame: values['max-frame'] ? parseBytes('max-frame', values['max-frame']) : DEFAULT_LIMITS.maxFrame,
      maxOutput: values['max-output'] ? parseBytes('max-output', values['max-output']) : DEFAULT_LIMITS.maxOutput,
      maxConns: values['max-conns'] ? parseInteger('max-conns', values['max-conns'], 1) : DEFAULT_LIMITS.maxConns,
    },
    reusePort: values['reuse-port']!,
    shutdownTimeoutMs: parseInteger('shutdown-timeout', values['shutdown-timeout']!, 0),
  };
  const { NativeServer } = await import('../server/native/server.js');
  const server: MobServer = new NativeServer(options, log);
  // Handlers first: a supervisor may signal as soon as it reads the line below.
  stopOnSignals(server, log);
  const { host, port } = server.address;
  const { maxFrame, maxOutput, maxConns } = server.limits;
  log.info(`${server.engine} engine; max-frame ${maxFrame} B, max-output ${maxOutput} B, max-conns ${maxConns}`);
  process.stdout.write(`listening on ${isIP(host) === 6 ? `[${host}]` : host}:${port}\n`);
}

function stopOnSignals(server: MobServer, log: Logger): void {
  let stopping = false;
  const stop = (signal: NodeJS.Signals) => {
    if (stopping) {
      log.warn(`${signal} again: exiting now`);
      process.exit(1);
    }
    stopping = true;
    log.info(`${signal}: no longer accepting; closing ${server.connections} client(s)`);
    void server.close().then(() => {
      log.info('stopped');
      process.exit(0);
    });
  };
  process.on('SIGINT', stop);
  process.on('SIGTERM', stop);
}

async function resolveHost(host: string): Promise<string> {
  if (isIP(host) !== 0) return host;
  try {
    return (await lookup(host)).address;
  } catch {
    throw new Error(`cannot resolve --host ${host}`);
  }
}
