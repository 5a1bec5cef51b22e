// Leveled logging to stderr. MOB_LOG picks the threshold (error|warn|info|debug|trace);
// callers on the hot path test `log.debugEnabled` / `log.traceEnabled` (a number compare) before
// building a message.
export const LEVELS = ['error', 'warn', 'info', 'debug', 'trace'] as const;
export type Level = (typeof LEVELS)[number];

export class Logger {
  private threshold: number;

  constructor(level: Level = 'info', private readonly write: (line: string) => void = defaultWrite) {
    this.threshold = LEVELS.indexOf(level);
  }

  static fromEnv(env: NodeJS.ProcessEnv = process.env): Logger {
    const wanted = (env.MOB_LOG ?? 'info').toLowerCase();
    if (!(LEVELS as readonly string[]).includes(wanted)) {
      const logger = new Logger('info');
      logger.warn(`MOB_LOG=${wanted} is not one of ${LEVELS.join('|')}; using info`);
      return logger;
    }
    return new Logger(wanted as Level);
  }

  get traceEnabled(): boolean {
    return this.threshold >= 4;
  }

  get debugEnabled(): boolean {
    return this.threshold >= 3;
  }

  error(message: string): void { this.emit(0, message); }
  warn(message: string): void { this.emit(1, message); }
  info(message: string): void { this.emit(2, message); }
  debug(message: string): void { this.emit(3, message); }
  trace(message: string): void { this.emit(4, message); }

  private emit(level: number, message: string): void {
    if (level > this.threshold) return;
    this.write(`${new Date().toISOString()} ${LEVELS[level]!.toUpperCase().padEnd(5)} ${message}`);
  }
}

function defaultWrite(line: string): void {
  process.stderr.write(line + '\n');
}
