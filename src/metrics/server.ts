// `--metrics HOST:PORT`: GET /metrics (Prometheus text) and GET /healthz, on node:http. Off the
// hot path: it runs on the main thread's libuv loop and asks the workers for their figures only
// when scraped.
import { createServer, type Server } from 'node:http';
import { isIP } from 'node:net';
import type { Logger } from '../log.js';
import { renderMetrics, type ProcessFigures, type WorkerSnapshots } from './prometheus.js';

export interface MetricsSource {
  /** Every worker's snapshot (one entry without --workers); null for a worker that is down. */
  snapshots(): Promise<WorkerSnapshots>;
  figures(): ProcessFigures;
}

export interface MetricsServer {
  readonly host: string;
  readonly port: number;
  close(): Promise<void>;
}

/** "127.0.0.1:9100" or "[::1]:9100": an IP literal is required (no ":9100" meaning every interface). */
export function parseHostPort(text: string): { host: string; port: number } {
  const match = /^(?:\[([^\]]+)\]|([^:]+)):(\d{1,5})$/.exec(text.trim());
  const host = match?.[1] ?? match?.[2];
  const port = Number(match?.[3]);
  if (!match || host === undefined || isIP(host) === 0 || port > 65535) {
    throw new RangeError(`--metrics wants HOST:PORT with an IP address (127.0.0.1:9100, [::1]:9100), not '${text}'`);
  }
  return { host, port };
}

export async function startMetricsServer(host: string, port: number, source: MetricsSource, log: Logger): Promise<MetricsServer> {
  const server: Server = createServer((request, response) => {
    const path = (request.url ?? '/').split('?')[0];
    if (request.method !== 'GET' && request.method !== 'HEAD') {
      response.writeHead(405, { allow: 'GET, HEAD' }).end();
      return;
    }
    if (path === '/metrics') {
      source.snapshots().then(
        (snapshots) => {
          response.writeHead(200, { 'content-type': 'text/plain; version=0.0.4; charset=utf-8' });
          response.end(renderMetrics(snapshots, source.figures()));
        },
        (error: Error) => {
          log.error(`metrics: ${error.message}`);
          response.writeHead(500, { 'content-type': 'text/plain' }).end(`${error.message}\n`);
        },
      );
      return;
    }
    if (path === '/healthz') {
      // Healthy = every configured worker is up and answered: a dead or wedged worker is not
      // a silent half-server to a load balancer either.
      source.snapshots().then(
        (snapshots) => {
          const down = snapshots.filter((s) => s === null).length;
          const healthy = down === 0 && snapshots.length === source.figures().workers;
          response.writeHead(healthy ? 200 : 503, { 'content-type': 'text/plain' });
          response.end(healthy ? 'ok\n' : `${down} of ${source.figures().workers} worker(s) down\n`);
        },
        (error: Error) => response.writeHead(503, { 'content-type': 'text/plain' }).end(`${error.message}\n`),
      );
      return;
    }
    response.writeHead(404, { 'content-type': 'text/plain' }).end('try /metrics or /healthz\n');
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen({ host, port }, () => {
      server.off('error', reject);
      resolve();
    });
  });
  server.on('error', (error) => log.error(`metrics: ${error.message}`));
  const address = server.address();
  const bound = typeof address === 'object' && address !== null ? address.port : port;
  return {
    host,
    port: bound,
    close: () => new Promise<void>((resolve) => {
      server.close(() => resolve());
      server.closeAllConnections();
    }),
  };
}
