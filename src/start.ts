// startServer: either engine from one options object, for programs that embed mob and for the
// `mob serve` command alike, so both start a server the same way (#10).
import { Logger, type Level } from './log.js';
import { DEFAULT_LIMITS, type Limits, type MobServer, type ServerOptions } from './server/policy.js';
import type { LoopTracer } from './server/tracer.js';
import type { UvMode } from './server/uv/mode.js';

export type Engine = 'native' | 'uv';
export type { UvMode };

export interface StartOptions extends Partial<Omit<ServerOptions, 'limits'>> {
  /** 'native' (raw epoll/kqueue, the default) or 'uv' (node:net). */
  engine?: Engine;
  /** How the uv engine sends (see the README's benchmark); ignored by the native engine. */
  uvMode?: UvMode;
  /** Any limit left out keeps its default (DEFAULT_LIMITS). */
  limits?: Partial<Limits>;
  /** Where log lines go: a Logger, or a level for one writing to stderr (default: 'warn'). */
  log?: Logger | Level;
  /** Sees every poller event and syscall of the native loop (mob serve --trace). */
  tracer?: LoopTracer;
}

/**
 * Starts a mob server and resolves once it is accepting. Port 0 (the default) asks the kernel
 * for a free port: read it from `server.address.port`. Rejects with the system error
 * (EADDRINUSE...) when it cannot listen, or MOB_NO_ADDON when the native engine has no addon.
 */
export async function startServer(options: StartOptions = {}): Promise<MobServer> {
  const { engine = 'native', uvMode = 'corked', limits, log = 'warn', tracer, ...rest } = options;
  const serverOptions: ServerOptions = {
    host: '127.0.0.1',
    port: 0,
    ...rest,
    limits: { ...DEFAULT_LIMITS, ...limits },
    explicitMaxConns: rest.explicitMaxConns ?? limits?.maxConns !== undefined,
  };
  const logger = typeof log === 'string' ? new Logger(log) : log;
  if (engine === 'uv') {
    if (tracer !== undefined) throw new TypeError('a tracer follows the native loop; the uv engine has none');
    const { UvServer } = await import('./server/uv/server.js');
    return UvServer.listen(serverOptions, logger, uvMode);
  }
  if (engine !== 'native') throw new TypeError(`engine must be 'native' or 'uv', not '${String(engine)}'`);
  const { NativeServer } = await import('./server/native/server.js');
  return new NativeServer(serverOptions, logger, tracer ?? null);
}
