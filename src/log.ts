// Leveled logging to stderr. MOB_LOG picks the threshold (error|warn|info|debug|trace);
// callers on the hot path test `log.debugEnabled` / `log.traceEnabled` (a number compare) before
// building a message. MOB_LOG_FORMAT=json writes one JSON object per line (time, level, msg, then
// the fields) for log collectors (#10); the default text lines carry the same facts in their
// message.
//
// Lines a client can cause (a shed connection, a limit breach, a failing accept) go through a
// RateLimit keyed by their reason: one line per reason per second, and a count of the rest, so
// a flood of 100,000 connections costs a few lines, not 100,000 (#9).
export const LEVELS = ['error', 'warn', 'info', 'debug', 'trace'] as const;
export type Level = (typeof LEVELS)[number];

const FORMATS = ['text', 'json'] as const;
export type LogFormat = (typeof FORMATS)[number];

/** Facts about a line, for the JSON format; the text format leaves them out, so a message must
 *  say in words what its fields say. A bigint is written as an exact JSON number. */
export type LogFields = Readonly<Record<string, string | number | bigint | boolean>>;

/** How long a rate-limited reason stays quiet after a line. */
const RATE_LIMIT_MS = 1000;

export interface LoggerOptions {
  format?: LogFormat;
  /** The window of a RateLimit (tests shorten it). */
  rateLimitMs?: number;
}

export class Logger {
  readonly format: LogFormat;
  readonly rateLimitMs: number;
  private threshold: number;
  private readonly limits = new Map<string, RateLimit>();

  constructor(level: Level = 'info', private readonly write: (line: string) => void = defaultWrite, options: LoggerOptions = {}) {
    this.threshold = LEVELS.indexOf(level);
    this.format = options.format ?? 'text';
    this.rateLimitMs = options.rateLimitMs ?? RATE_LIMIT_MS;
  }

  static fromEnv(env: NodeJS.ProcessEnv = process.env, write: (line: string) => void = defaultWrite): Logger {
    const wantedFormat = (env.MOB_LOG_FORMAT ?? 'text').toLowerCase();
    const format = (FORMATS as readonly string[]).includes(wantedFormat) ? (wantedFormat as LogFormat) : 'text';
    const wanted = (env.MOB_LOG ?? 'info').toLowerCase();
    const levelKnown = (LEVELS as readonly string[]).includes(wanted);
    const logger = new Logger(levelKnown ? (wanted as Level) : 'info', write, { format });
    if (format !== wantedFormat) logger.warn(`MOB_LOG_FORMAT=${wantedFormat} is not one of ${FORMATS.join('|')}; using text`);
    if (!levelKnown) logger.warn(`MOB_LOG=${wanted} is not one of ${LEVELS.join('|')}; using info`);
    return logger;
  }

  get traceEnabled(): boolean {
    return this.threshold >= 4;
  }

  get debugEnabled(): boolean {
    return this.threshold >= 3;
  }

  error(message: string, fields?: LogFields): void { this.emit(0, message, fields); }
  warn(message: string, fields?: LogFields): void { this.emit(1, message, fields); }
  info(message: string, fields?: LogFields): void { this.emit(2, message, fields); }
  debug(message: string, fields?: LogFields): void { this.emit(3, message, fields); }
  trace(message: string, fields?: LogFields): void { this.emit(4, message, fields); }

  /**
   * The rate limit for one reason (`key`), made on first use: `if (log.limit(key, ...).admit())
   * log.warn(...)`. `summary` names the reason in the line that reports what was held back.
   */
  limit(key: string, summary: string, level: Level = 'warn'): RateLimit {
    let limit = this.limits.get(key);
    if (limit === undefined) {
      limit = new RateLimit(this, key, summary, level, this.rateLimitMs);
      this.limits.set(key, limit);
    }
    return limit;
  }

  /** Reports what every rate limit is holding back now (before the process exits). */
  flushLimits(): void {
    for (const limit of this.limits.values()) limit.flush();
  }

  /** @internal RateLimit's way in. */
  emitAt(level: Level, message: string, fields?: LogFields): void {
    this.emit(LEVELS.indexOf(level), message, fields);
  }

  private emit(level: number, message: string, fields?: LogFields): void {
    if (level > this.threshold) return;
    const time = new Date().toISOString();
    if (this.format === 'json') {
      this.write(jsonLine(time, LEVELS[level]!, message, fields));
    } else {
      this.write(`${time} ${LEVELS[level]!.toUpperCase().padEnd(5)} ${message}`);
    }
  }
}

/**
 * One line per window for one reason. The first occurrence is logged at once and closes the
 * window; later ones only add to a counter (no clock read, no string) until the window ends,
 * when one line reports how many there were — "(and 811 more like this in the last 1 s)" — and
 * a new window starts closed, so a sustained flood logs one line a second. A window that ends
 * with nothing held back reopens.
 */
export class RateLimit {
  private open = true;
  private suppressed = 0;
  private windowStart = 0;
  private timer: NodeJS.Timeout | null = null;

  constructor(
    private readonly log: Logger,
    readonly key: string,
    private readonly summary: string,
    private readonly level: Level,
    private readonly intervalMs: number,
  ) {}

  /**
   * Whether to log this occurrence. `count` is what it stands for (e.g. connections closed in
   * one line), summed into the report of what was held back.
   */
  admit(count = 1): boolean {
    if (!this.open) {
      this.suppressed += count;
      return false;
    }
    this.open = false;
    this.startWindow();
    return true;
  }

  /** Reports what is held back now instead of at the end of the window. */
  flush(): void {
    if (this.suppressed === 0) return;
    this.report();
  }

  private startWindow(): void {
    this.windowStart = Date.now();
    if (this.timer === null) {
      this.timer = setTimeout(() => this.endWindow(), this.intervalMs);
      // A quiet server must still be able to exit; flushLimits() reports what is left.
      this.timer.unref();
    } else {
      this.timer.refresh();
    }
  }

  private endWindow(): void {
    if (this.suppressed === 0) {
      this.timer = null;
      this.open = true;
      return;
    }
    this.report();
    this.startWindow();
  }

  private report(): void {
    const held = this.suppressed;
    this.suppressed = 0;
    const seconds = Math.round((Date.now() - this.windowStart) / 100) / 10;
    this.log.emitAt(this.level, `${this.summary} (and ${held} more like this in the last ${seconds} s)`, {
      reason: this.key,
      suppressed: held,
      seconds,
    });
  }
}

function jsonLine(time: string, level: Level, message: string, fields: LogFields | undefined): string {
  let line = `{"time":"${time}","level":"${level}","msg":${JSON.stringify(message)}`;
  if (fields !== undefined) {
    for (const name in fields) {
      const value = fields[name]!;
      const key = name === 'time' || name === 'level' || name === 'msg' ? `field_${name}` : name;
      line += `,${JSON.stringify(key)}:${typeof value === 'bigint' ? value.toString() : JSON.stringify(value)}`;
    }
  }
  return line + '}';
}

function defaultWrite(line: string): void {
  process.stderr.write(line + '\n');
}
