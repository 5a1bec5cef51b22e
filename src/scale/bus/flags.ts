// `mob serve --bus URL [--bus-retention N] [--bus-backlog BYTES]`: the flags and their checks, in
// one place for the single-process server and for the workers (each worker connects itself,
// with the process's node id: docs/scaling.md). Light on purpose: the Redis client loads only with --bus.
import { parseBytes, parseInteger, UsageError, type FlagTable } from '../../cli/args.js';
import { BusUrlError, parseBusUrl } from './url.js';
import { randomUUID } from 'node:crypto';
import type { BusOptions } from './index.js';

export const DEFAULT_RETENTION = 100_000;
export const DEFAULT_BACKLOG_BYTES = 64 * 1024 * 1024;

/** One per process, shared by its workers. */
export function newNodeId(): string {
  return randomUUID();
}

export const BUS_FLAGS = {
  bus: { type: 'string', value: 'redis://…', help: 'one server with every node on this Redis or Valkey: redis://[user:pass@]host:port[/db], or rediss:// for TLS' },
  'bus-retention': { type: 'string', value: 'N', help: `entries the bus stream keeps (XADD MAXLEN ~); a node further behind drops its clients (default ${DEFAULT_RETENTION})` },
  'bus-backlog': { type: 'string', value: 'SIZE', help: 'local bytes kept while Redis is unreachable; past it their senders are disconnected (default 64MiB)' },
} as const satisfies FlagTable;

export interface BusFlagValues {
  bus?: string | undefined;
  'bus-retention'?: string | undefined;
  'bus-backlog'?: string | undefined;
}

/** The bus options the flags ask for (a fresh node id), or null without --bus. */
export function busOptionsFrom(values: BusFlagValues): BusOptions | null {
  if (values.bus === undefined) {
    for (const flag of ['bus-retention', 'bus-backlog'] as const) {
      if (values[flag] !== undefined) throw new UsageError(`--${flag} has no meaning without --bus`);
    }
    return null;
  }
  try {
    parseBusUrl(values.bus);
  } catch (error) {
    if (error instanceof BusUrlError) throw new UsageError(error.message);
    throw error;
  }
  return {
    url: values.bus,
    nodeId: newNodeId(),
    maxLen: values['bus-retention'] === undefined ? DEFAULT_RETENTION : parseInteger('bus-retention', values['bus-retention'], 1),
    backlogBytes: values['bus-backlog'] === undefined ? DEFAULT_BACKLOG_BYTES : parseBytes('bus-backlog', values['bus-backlog']),
  };
}
