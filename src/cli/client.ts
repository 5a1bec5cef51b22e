import { runClients } from '../client/clients.js';
import { parse, parseBytes, parseInteger } from './args.js';

export const CLIENT_USAGE = `mob client [--host 127.0.0.1] [--port 8000] [--clients 10] [--messages 100] [--size 64]
           [--window 1] [--timeout 30000] [--json]`;

export async function client(argv: string[]): Promise<void> {
  const { values } = parse('client', argv, {
    host: { type: 'string', default: '127.0.0.1' },
    port: { type: 'string', default: '8000' },
    clients: { type: 'string', default: '10' },
    messages: { type: 'string', default: '100' },
    size: { type: 'string', default: '64' },
    window: { type: 'string', default: '1' },
    timeout: { type: 'string', default: '30000' },
    json: { type: 'boolean', default: false },
  });
  const report = await runClients({
    host: values.host!,
    port: parseInteger('port', values.port!, 1, 65535),
    clients: parseInteger('clients', values.clients!, 1, 100_000),
    messages: parseInteger('messages', values.messages!, 0),
    size: parseBytes('size', values.size!),
    window: parseInteger('window', values.window!, 1),
    timeoutMs: parseInteger('timeout', values.timeout!, 1),
  });
  if (values.json) {
    process.stdout.write(JSON.stringify(report) + '\n');
  } else {
    const lines = [
      `clients ${report.clients}, ${report.messagesPerClient} frames of ${report.size} B each`,
      `sent ${report.sent}, received ${report.received} of ${report.expected} expected` +
        `, out of order ${report.outOfOrder}, corrupt ${report.corrupt}`,
      `round trip ms: p50 ${report.rttMs.p50.toFixed(3)}, p99 ${report.rttMs.p99.toFixed(3)}, max ${report.rttMs.max.toFixed(3)}`,
      `${report.elapsedMs.toFixed(0)} ms, ${Math.round(report.framesPerSecond)} frames/s delivered`,
      ...report.errors.map((e) => `error: ${e}`),
      report.ok ? 'ok' : 'FAILED',
    ];
    process.stdout.write(lines.join('\n') + '\n');
  }
  if (!report.ok) process.exitCode = 1;
}
