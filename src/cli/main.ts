#!/usr/bin/env node
// The `mob` command. Every failure a user can act on ends as one line on stderr and a
// non-zero exit: 2 for a usage mistake, 1 for anything else.
import { UsageError } from './args.js';
import { SERVE_USAGE } from './serve.js';
import { CLIENT_USAGE } from './client.js';
import { LAB_USAGE } from './lab.js';

const USAGE = `mob — a multi-echo server on raw epoll/kqueue

usage:
  ${SERVE_USAGE}
  ${CLIENT_USAGE}
  mob info
  ${LAB_USAGE}

MOB_LOG=error|warn|info|debug|trace sets the log level (default info).
MOB_LOG_FORMAT=json writes log lines as JSON objects (time, level, msg, fields).`;

async function main(argv: string[]): Promise<void> {
  const [command, ...rest] = argv;
  switch (command) {
    case 'serve':
      return (await import('./serve.js')).serve(rest);
    case 'client':
      return (await import('./client.js')).client(rest);
    case 'info':
      return (await import('./info.js')).info();
    case 'lab':
      return (await import('./lab.js')).lab(rest);
    case undefined:
    case 'help':
    case '--help':
    case '-h':
      process.stdout.write(USAGE + '\n');
      return;
    default:
      throw new UsageError(`mob: unknown command '${command}'; try mob --help`);
  }
}

main(process.argv.slice(2)).catch((error: unknown) => {
  const err = error as Error & { code?: string };
  process.stderr.write(`${describe(err)}\n`);
  if (process.env.MOB_LOG === 'debug' || process.env.MOB_LOG === 'trace') process.stderr.write(`${err.stack}\n`);
  process.exit(err instanceof UsageError ? 2 : 1);
});

function describe(err: Error & { code?: string; syscall?: string }): string {
  if (err instanceof UsageError) return err.message;
  switch (err.code) {
    case 'EADDRINUSE':
      return `mob: cannot listen: address already in use (${err.message})`;
    case 'EACCES':
      return `mob: cannot listen: permission denied (${err.message})`;
    case 'EADDRNOTAVAIL':
      return `mob: cannot listen: address not available on this machine (${err.message})`;
    case 'MOB_NO_ADDON':
      return err.message;
    case 'ERR_DLOPEN_FAILED':
      if (err.message.startsWith('mob: ')) return err.message; // the loader's own diagnosis
      return `mob: the native addon failed to load (wrong platform or a stale build?): ${err.message.split('\n')[0]}; rebuild with npm run build:native`;
    default:
      return `mob: ${err.message}`;
  }
}
