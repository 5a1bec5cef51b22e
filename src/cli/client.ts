import { runClients, type ClientReport } from '../client/clients.js';
import { PAYLOAD_HEADER } from '../client/payload.js';
import { parseCommand, parseHost, usageLine, type Command } from './args.js';

export const CLIENT: Command = {
  name: 'client',
  summary: 'Run N clients that send M frames each; every client checks every frame of every client, in order.\n' +
    'Exits 1 if anything is missing, reordered or altered, or if it cannot connect.',
  flags: {
    host: { type: 'string', value: 'HOST', default: '127.0.0.1', help: 'server address (an IP, [::1] or a name)' },
    port: { type: 'string', value: 'PORT', default: '8000', help: 'server port' },
    clients: { type: 'string', value: 'N', default: '10', help: 'clients connected at once' },
    messages: { type: 'string', value: 'N', default: '100', help: 'frames each client sends' },
    size: { type: 'string', value: 'SIZE', default: '64', help: `payload bytes per frame (at least ${PAYLOAD_HEADER})` },
    window: { type: 'string', value: 'N', default: '1', help: 'own frames in flight per client (1: ping-pong)' },
    timeout: { type: 'string', value: 'MS', default: '30000', help: 'ms before the run fails' },
    json: { type: 'boolean', help: 'print the report as one JSON line' },
  },
};

export const CLIENT_USAGE = usageLine(CLIENT);

export async function client(argv: string[]): Promise<void> {
  const flags = parseCommand(CLIENT, argv);
  const host = parseHost(flags.string('host')!);
  const port = flags.integer('port', 1, 65535)!;
  const report = await runClients({
    host,
    port,
    clients: flags.integer('clients', 1, 100_000)!,
    messages: flags.integer('messages', 1)!,
    size: flags.bytes('size', PAYLOAD_HEADER)!,
    window: flags.integer('window', 1)!,
    timeoutMs: flags.integer('timeout', 1)!,
  });
  // Nothing was measured: one line, not a report of zeros.
  if (report.connectFailure !== null) throw new Error(`cannot connect to ${host.includes(':') ? `[${host}]` : host}:${port}: ${report.connectFailure}`);
  process.stdout.write((flags.boolean('json') ? JSON.stringify(report) : describe(report)) + '\n');
  if (!report.ok) process.exitCode = 1;
}

function describe(report: ClientReport): string {
  const { p50, p99, max } = report.rttMs;
  return [
    `clients ${report.clients}, ${report.messagesPerClient} frames of ${report.size} B each`,
    `sent ${report.sent}, received ${report.received} of ${report.expected} expected` +
      `, out of order ${report.outOfOrder}, corrupt ${report.corrupt}`,
    Number.isFinite(p50) ? `round trip ms: p50 ${p50.toFixed(3)}, p99 ${p99.toFixed(3)}, max ${max.toFixed(3)}` : 'round trip ms: none measured',
    `${report.elapsedMs.toFixed(0)} ms, ${Math.round(report.framesPerSecond)} frames/s delivered`,
    ...report.errors.map((e) => `error: ${e}`),
    report.ok ? 'ok' : 'FAILED',
  ].join('\n');
}
