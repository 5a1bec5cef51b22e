// One worker thread: a whole mob server on its own poller, on the shared port, joined to its
// peers by links (links.ts). The supervisor (pool.ts) starts it with a WorkerConfig and speaks to
// it in ToWorker/FromWorker messages.
import { parentPort, workerData } from 'node:worker_threads';
import { Logger, LEVELS, type Level } from '../../log.js';
import type { MobServer, ServerOptions } from '../../server/policy.js';
import type { FanoutHost } from '../../server/fanout.js';
import { snapshotOf } from '../../metrics/snapshot.js';
import { Links } from './links.js';
import type { FromWorker, ToWorker, WorkerConfig } from './protocol.js';

const config = workerData as WorkerConfig;
const port = parentPort!;
const post = (message: FromWorker) => port.postMessage(message);

const level: Level = (LEVELS as readonly string[]).includes(config.logLevel) ? (config.logLevel as Level) : 'info';
// "<time> <LEVEL> worker 2: …", so an operator can tell the workers apart.
const log = new Logger(level, (line) => process.stderr.write(line.replace(/^(\S+ \S+\s+)/, `$1worker ${config.index}: `) + '\n'));

async function createServer(): Promise<MobServer & FanoutHost> {
  const options = await listenOptions();
  if (config.engine.engine === 'uv') {
    const { UvServer } = await import('../../server/uv/server.js');
    return UvServer.listen(options, log, config.engine.uvMode);
  }
  const { NativeServer } = await import('../../server/native/server.js');
  return new NativeServer(options, log);
}

async function listenOptions(): Promise<ServerOptions> {
  // The supervisor's listener, watched by every worker's poller: it stays the supervisor's.
  if (config.listenFd !== null) return { ...config.options, listenFd: config.listenFd, keepListenFd: true };
  // SO_REUSEPORT: every worker has a listener of its own on the one port, and the kernel spreads
  // new connections over them (Linux hashes the 4-tuple).
  if (config.engine.engine === 'native') return { ...config.options, reusePort: true };
  // node:net in Node 20 cannot set SO_REUSEPORT itself: it listens on one the addon made, and
  // owns (and closes) it from then on.
  const { native } = await import('../../native/binding.js');
  const listenFd = native.listen(config.options.host, config.options.port, 0, true);
  native.disown(listenFd);
  return { ...config.options, listenFd };
}

const server = await createServer();
const links = new Links(server, config.linkBound, log, (peer, queued) => post({ type: 'link-cut', peer, queued }));
for (const end of config.outbound) links.addOutbound(end.peer, end.fd);
for (const end of config.inbound) links.addInbound(end.peer, end.fd);
const bus = config.bus === null ? null : await (await import('../bus/index.js')).connectBus(server, config.bus, log);

port.on('message', (message: ToWorker) => {
  switch (message.type) {
    case 'snapshot':
      post({ type: 'snapshot', id: message.id, snapshot: snapshotOf(server, links.snapshot(), bus?.metrics() ?? null) });
      return;
    case 'relink':
      if (message.lost) server.dropAllClients(`frames from worker ${message.peer}'s clients were lost: this worker fell behind on its link`);
      if (message.outbound >= 0) links.addOutbound(message.peer, message.outbound);
      if (message.inbound >= 0) links.addInbound(message.peer, message.inbound);
      return;
    case 'stall':
      Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, message.ms);
      return;
    case 'close-now':
      void server.closeNow();
      links.abortOutbound();
      return;
    case 'close': {
      // In this order (docs/scaling.md, "Shutdown"): the server stops taking input, which puts
      // its last batches on the links; the links end (EOF to each peer) once those are written;
      // the server keeps delivering what its peers send until each of them has ended its link
      // to this worker, and only then winds its clients down. Then the bus (publishes what it
      // still keeps).
      const closed = server.close(links.inboundEnded());
      const linksEnded = links.endOutbound(config.options.shutdownTimeoutMs ?? 5000);
      void Promise.all([closed, linksEnded]).then(() => bus?.close()).then(() => {
        links.close();
        port.close(); // nothing left to keep the thread: it ends, and the supervisor sees 'exit'
      });
      return;
    }
  }
});

post({ type: 'ready', port: server.address.port });
