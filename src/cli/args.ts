import { parseArgs, type ParseArgsConfig } from 'node:util';

/** A mistake on the command line: the CLI prints its message alone and exits 2. */
export class UsageError extends Error {
  readonly code = 'MOB_USAGE';
}

const UNITS: Record<string, number> = {
  '': 1, b: 1, k: 1024, kb: 1000, kib: 1024, m: 1024 ** 2, mb: 1000 ** 2, mib: 1024 ** 2,
  g: 1024 ** 3, gb: 1000 ** 3, gib: 1024 ** 3,
};

/** "65536", "64KiB", "16M", "1.5GiB" → bytes. */
export function parseBytes(flag: string, text: string): number {
  const match = /^(\d+(?:\.\d+)?)\s*([a-z]*)$/i.exec(text.trim());
  const unit = match ? UNITS[match[2]!.toLowerCase()] : undefined;
  if (!match || unit === undefined) throw new UsageError(`--${flag} wants a size in bytes (e.g. 65536, 64KiB, 16MiB), not '${text}'`);
  const bytes = Math.floor(Number(match[1]) * unit);
  if (!Number.isSafeInteger(bytes)) throw new UsageError(`--${flag} ${text} is too large`);
  return bytes;
}

export function parseInteger(flag: string, text: string, min: number, max = Number.MAX_SAFE_INTEGER): number {
  const value = Number(text);
  if (!/^-?\d+$/.test(text.trim()) || !Number.isSafeInteger(value) || value < min || value > max) {
    throw new UsageError(`--${flag} wants a whole number from ${min} to ${max}, not '${text}'`);
  }
  return value;
}

export type Options = NonNullable<ParseArgsConfig['options']>;

/** node:util parseArgs with errors turned into one-line UsageErrors. */
export function parse<T extends Options>(command: string, argv: string[], options: T) {
  try {
    return parseArgs({ args: argv, options, strict: true, allowPositionals: true });
  } catch (error) {
    throw new UsageError(`mob ${command}: ${(error as Error).message.split('\n')[0]}`);
  }
}
