// `<package>/server`: start either engine from a program (re-exports only).
export { startServer, type StartOptions, type Engine, type UvMode } from '../start.js';
export {
  DEFAULT_LIMITS, describeClose,
  type MobServer, type ServerAddress, type ServerStats, type Limits, type CloseReason, type ServerOptions,
} from './policy.js';
export type { LoopTracer, TracedCall } from './tracer.js';
export { Logger, type Level } from '../log.js';
