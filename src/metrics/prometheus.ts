// The Prometheus text exposition format (version 0.0.4), written by hand: a dozen metric
// families with one label or two do not need a client library's registry, and this keeps every
// figure where the server already counts it (ServerStats), read only at scrape time.
import type { ServerSnapshot } from './snapshot.js';

export interface ProcessFigures {
  /** Workers the process is meant to run (1 without --workers). */
  workers: number;
  /** Workers that died and were started again. */
  restarts: number;
}

/** Each worker's snapshot; `null` for a worker that is not up (dead, restarting). */
export type WorkerSnapshots = (ServerSnapshot | null)[];

type Kind = 'counter' | 'gauge';

class Exposition {
  private readonly lines: string[] = [];

  family(name: string, kind: Kind, help: string, samples: [labels: string, value: number][]): void {
    this.lines.push(`# HELP ${name} ${help}`, `# TYPE ${name} ${kind}`);
    for (const [labels, value] of samples) this.lines.push(`${name}${labels ? `{${labels}}` : ''} ${formatValue(value)}`);
  }

  text(): string {
    return this.lines.join('\n') + '\n';
  }
}

function formatValue(value: number): string {
  if (Number.isNaN(value)) return 'NaN';
  if (value === Infinity) return '+Inf';
  if (value === -Infinity) return '-Inf';
  return String(value);
}

function escapeLabel(value: string): string {
  return value.replace(/\\/g, '\\\\').replace(/\n/g, '\\n').replace(/"/g, '\\"');
}

export function renderMetrics(workers: WorkerSnapshots, process: ProcessFigures): string {
  const out = new Exposition();
  const up = workers.flatMap((s, i) => (s === null ? [] : [[`worker="${i}"`, s] as const]));
  const per = (name: string, kind: Kind, help: string, value: (s: ServerSnapshot) => number) =>
    out.family(name, kind, help, up.map(([labels, s]) => [labels, value(s)]));

  out.family('mob_workers', 'gauge', 'Workers configured (--workers).', [['', process.workers]]);
  out.family('mob_workers_up', 'gauge', 'Workers running and answering.', [['', up.length]]);
  out.family('mob_worker_restarts_total', 'counter', 'Workers that died and were started again.', [['', process.restarts]]);
  per('mob_connections', 'gauge', 'Clients connected now.', (s) => s.connections);
  per('mob_connections_accepted_total', 'counter', 'Client connections accepted.', (s) => s.accepted);
  per('mob_connections_rejected_total', 'counter', 'Client connections closed at once (--max-conns, out of descriptors).', (s) => s.rejected);
  per('mob_frames_in_total', 'counter', 'Frames received from local clients.', (s) => s.framesIn);
  per('mob_bytes_in_total', 'counter', 'Bytes received from local clients.', (s) => s.bytesIn);
  per('mob_frames_delivered_total', 'counter', 'Frames handed to local clients, summed over receivers.', (s) => s.framesDelivered);
  per('mob_output_queued_bytes', 'gauge', 'Output bytes waiting for slow local clients.', (s) => s.bytesQueued);
  out.family('mob_disconnects_total', 'counter', 'Clients disconnected, by reason.',
    up.flatMap(([labels, s]) => Object.entries(s.disconnects).map(([reason, n]) => [`${labels},reason="${escapeLabel(reason)}"`, n] as [string, number])));
  const linked = up.filter(([, s]) => s.links !== null);
  if (linked.length > 0) {
    const link = (name: string, kind: Kind, help: string, value: (s: ServerSnapshot) => number) =>
      out.family(name, kind, help, linked.map(([labels, s]) => [labels, value(s)]));
    link('mob_peer_frames_in_total', 'counter', 'Frames that arrived from other workers and were broadcast here.', (s) => s.links!.framesIn);
    link('mob_peer_bytes_in_total', 'counter', 'Bytes that arrived from other workers.', (s) => s.links!.bytesIn);
    link('mob_peer_queued_bytes', 'gauge', 'Bytes waiting for slow peer workers to read their links.', (s) => s.links!.queuedBytes);
    link('mob_peer_link_cuts_total', 'counter', 'Links to a peer worker cut because it did not read in time.', (s) => s.links!.cuts);
  }
  // Present with a value of 0 without --bus, so dashboards and alerts need no special case.
  out.family('mob_bus_lag_entries', 'gauge', 'Bus entries written by other nodes and not yet read (0 without --bus).',
    up.map(([labels, s]) => [labels, s.bus?.lag ?? 0]));
  out.family('mob_bus_reconnects_total', 'counter', 'Times the bus connection was re-established (0 without --bus).',
    up.map(([labels, s]) => [labels, s.bus?.reconnects ?? 0]));
  out.family('mob_bus_connected', 'gauge', '1 while connected to the bus, 0 otherwise (absent without --bus).',
    up.flatMap(([labels, s]) => (s.bus === null ? [] : [[labels, s.bus.connected ? 1 : 0] as [string, number]])));
  return out.text();
}
