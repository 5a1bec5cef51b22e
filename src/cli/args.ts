// Command-line parsing for every `mob` command. A command declares its flags in one table
// (type, default, what the value looks like, one line of help); its usage line, its --help
// and its parser all come from that table, so a flag added there is documented and parsed at
// once (#10).
import { parseArgs, type ParseArgsConfig } from 'node:util';

/** A mistake on the command line: the CLI prints its message alone and exits 2. */
export class UsageError extends Error {
  readonly code = 'MOB_USAGE';
}

/** `--help` on a command: the CLI prints `text` on stdout and exits 0. */
export class HelpRequested extends Error {
  readonly code = 'MOB_HELP';
  constructor(readonly text: string) {
    super('help requested');
  }
}

const UNITS: Record<string, number> = {
  '': 1, b: 1, k: 1024, kb: 1000, kib: 1024, m: 1024 ** 2, mb: 1000 ** 2, mib: 1024 ** 2,
  g: 1024 ** 3, gb: 1000 ** 3, gib: 1024 ** 3,
};

/** "65536", "64KiB", "16M", "1.5GiB" → bytes, at least `min`. */
export function parseBytes(flag: string, text: string, min = 1): number {
  const match = /^(\d+(?:\.\d+)?)\s*([a-z]*)$/i.exec(text.trim());
  const unit = match ? UNITS[match[2]!.toLowerCase()] : undefined;
  if (!match || unit === undefined) throw new UsageError(`--${flag} wants a size in bytes (e.g. 65536, 64KiB, 16MiB), not '${text}'`);
  const bytes = Math.floor(Number(match[1]) * unit);
  if (!Number.isSafeInteger(bytes)) throw new UsageError(`--${flag} ${text} is too large`);
  if (bytes < min) throw new UsageError(`--${flag} must be at least ${min} bytes, not '${text}'`);
  return bytes;
}

export function parseInteger(flag: string, text: string, min: number, max = Number.MAX_SAFE_INTEGER): number {
  const value = Number(text);
  if (!/^-?\d+$/.test(text.trim()) || !Number.isSafeInteger(value) || value < min || value > max) {
    const range = max === Number.MAX_SAFE_INTEGER ? `of at least ${min}` : `from ${min} to ${max}`;
    throw new UsageError(`--${flag} wants a whole number ${range}, not '${text}'`);
  }
  return value;
}

function parseOneOf<T extends string>(flag: string, value: string, allowed: readonly T[]): T {
  if (!(allowed as readonly string[]).includes(value)) throw new UsageError(`--${flag} must be one of ${allowed.join(', ')}, not '${value}'`);
  return value as T;
}

/** A host as typed, or as the server prints it: `[::1]` is `::1`. */
export function parseHost(text: string): string {
  return /^\[.*\]$/.test(text) ? text.slice(1, -1) : text;
}

export type Options = NonNullable<ParseArgsConfig['options']>;

/** node:util parseArgs with errors turned into one-line UsageErrors. */
export function parse<T extends Options>(
  command: string, argv: string[], options: T,
): ReturnType<typeof parseArgs<{ args: string[]; options: T; strict: true; allowPositionals: true }>> {
  try {
    return parseArgs({ args: joinNegativeValues(argv, options), options, strict: true, allowPositionals: true });
  } catch (error) {
    const { code, message } = error as Error & { code?: string };
    const unknown = code === 'ERR_PARSE_ARGS_UNKNOWN_OPTION' ? /'(-[^']*)'/.exec(message) : null;
    if (unknown) throw new UsageError(`mob ${command}: unknown option '${unknown[1]}'; mob ${command} --help lists the flags`);
    throw new UsageError(`mob ${command}: ${message.split('\n')[0]}`);
  }
}

/** parseArgs takes `--port -1` for two options and says "argument is ambiguous"; glue a
 *  negative number to its flag so the flag's own check can name what is wrong with it. */
function joinNegativeValues(argv: string[], options: Options): string[] {
  const out: string[] = [];
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i]!;
    const next = argv[i + 1];
    const flag = arg.startsWith('--') ? options[arg.slice(2)] : undefined;
    if (flag?.type === 'string' && next !== undefined && /^-\d/.test(next)) {
      out.push(`${arg}=${next}`);
      i++;
    } else {
      out.push(arg);
    }
  }
  return out;
}

export interface Flag {
  readonly type: 'string' | 'boolean';
  /** Shown after the flag in the usage line when there is no default: `N`, `native|uv`. */
  readonly value?: string;
  readonly default?: string;
  readonly help: string;
}

export type FlagTable = Readonly<Record<string, Flag>>;

export interface Command {
  readonly name: string;
  readonly summary: string;
  readonly flags: FlagTable;
  /** Positionals the command takes, for its usage (`NAME...`); none when absent. */
  readonly positionals?: string;
}

const USAGE_WIDTH = 96;

/** `mob serve [--host 127.0.0.1] [--port 8000] …`, wrapped under the command's name. */
export function usageLine(command: Command): string {
  const head = `mob ${command.name}`;
  const words = Object.entries(command.flags).map(([name, flag]) =>
    flag.type === 'boolean' ? `[--${name}]` : `[--${name} ${flag.default ?? flag.value ?? 'VALUE'}]`);
  if (command.positionals) words.push(command.positionals);
  const lines: string[] = [];
  let line = head;
  for (const word of words) {
    if (line.length + 1 + word.length > USAGE_WIDTH && line.trim() !== head) {
      lines.push(line);
      line = ' '.repeat(head.length);
    }
    line += ` ${word}`;
  }
  lines.push(line);
  return lines.join('\n');
}

/** What `mob COMMAND --help` prints. */
function helpText(command: Command): string {
  const rows = Object.entries(command.flags).map(([name, flag]) => {
    const shown = flag.type === 'boolean' ? `--${name}` : `--${name} ${flag.value ?? 'VALUE'}`;
    const fallback = flag.default === undefined ? '' : ` (default ${flag.default})`;
    return [shown, flag.help + fallback] as const;
  });
  rows.push(['--help', 'print this help']);
  const width = Math.max(...rows.map(([shown]) => shown.length));
  return [
    `usage: ${usageLine(command).replace(/\n/g, '\n       ')}`,
    '',
    command.summary,
    '',
    ...rows.map(([shown, help]) => `  ${shown.padEnd(width)}  ${help}`),
  ].join('\n');
}

/** A command's parsed flags, read by name with the checks each kind of value needs; every
 *  message names the flag. */
export class ParsedFlags {
  constructor(
    private readonly command: Command,
    private readonly values: Readonly<Record<string, string | boolean | undefined>>,
    readonly positionals: readonly string[],
  ) {}

  /** Whether the user gave the flag (a default does not count). */
  given(name: string): boolean {
    return this.values[this.known(name)] !== undefined;
  }

  string(name: string): string | undefined {
    const value = this.values[this.known(name)];
    return typeof value === 'string' ? value : this.command.flags[name]!.default;
  }

  boolean(name: string): boolean {
    return this.values[this.known(name)] === true;
  }

  integer(name: string, min: number, max?: number): number | undefined {
    const text = this.string(name);
    return text === undefined ? undefined : parseInteger(name, text, min, max);
  }

  bytes(name: string, min: number): number | undefined {
    const text = this.string(name);
    return text === undefined ? undefined : parseBytes(name, text, min);
  }

  oneOf<T extends string>(name: string, allowed: readonly T[]): T | undefined {
    const text = this.string(name);
    return text === undefined ? undefined : parseOneOf(name, text, allowed);
  }

  private known(name: string): string {
    if (!(name in this.command.flags)) throw new Error(`mob ${this.command.name} has no flag --${name}`);
    return name;
  }
}

/** Parses argv against the command's table: `--help` anywhere throws HelpRequested; unknown
 *  flags, and positionals the command does not take, are UsageErrors. */
export function parseCommand(command: Command, argv: string[]): ParsedFlags {
  if (argv.includes('--help') || argv.includes('-h')) throw new HelpRequested(helpText(command));
  const options: Options = {};
  // No defaults here: ParsedFlags applies them, so given() can tell them from typed values.
  for (const [name, flag] of Object.entries(command.flags)) options[name] = { type: flag.type };
  const { values, positionals } = parse(command.name, argv, options);
  if (!command.positionals && positionals.length > 0) {
    throw new UsageError(`mob ${command.name}: unexpected argument '${positionals[0]}'; mob ${command.name} --help lists what it takes`);
  }
  return new ParsedFlags(command, values as Record<string, string | boolean | undefined>, positionals);
}
