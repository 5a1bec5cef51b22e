#!/usr/bin/env node
// The `mob` command. Every failure a user can act on ends as one line on stderr and a
// non-zero exit: 2 for a usage mistake, 1 for anything else.
import { HelpRequested, UsageError } from './args.js';
import { SERVE_USAGE } from './serve.js';
import { CLIENT_USAGE } from './client.js';
import { INFO_USAGE, packageVersion } from './info.js';
import { LAB_USAGE } from './lab.js';
import { TRACE_SVG_USAGE } from './trace-svg.js';

const COMMANDS = `${SERVE_USAGE}
${CLIENT_USAGE}
${INFO_USAGE}
${LAB_USAGE}
${TRACE_SVG_USAGE}`;

/** `mob --help`; the README's usage block is the part under "usage:" (test/cli.test.ts checks). */
export const USAGE = `mob — a multi-echo server on raw epoll/kqueue

usage:
${COMMANDS.replace(/^/gm, '  ')}

mob COMMAND --help describes a command's flags; mob --version prints the version.
MOB_LOG=error|warn|info|debug|trace sets the log level (default info).
MOB_LOG_FORMAT=json writes log lines as JSON objects (time, level, msg, fields).`;

/** --help for the commands whose flags are not in a table (see args.ts). */
function helpOn(argv: string[], usage: string, summary: string): void {
  if (argv.includes('--help') || argv.includes('-h')) throw new HelpRequested(`usage: ${usage}\n\n${summary}`);
}

async function main(argv: string[]): Promise<void> {
  const [command, ...rest] = argv;
  switch (command) {
    case 'serve':
      return (await import('./serve.js')).serve(rest);
    case 'client':
      return (await import('./client.js')).client(rest);
    case 'info':
      return (await import('./info.js')).info(rest);
    case 'lab':
      helpOn(rest, LAB_USAGE, 'Run the edge-triggering experiments on real loopback sockets; exits 1 if the kernel did not do what one claims.');
      return (await import('./lab.js')).lab(rest);
    case 'trace-svg':
      helpOn(rest, TRACE_SVG_USAGE, 'Draw the lane diagram (SVG) of a JSON timeline read from stdin.');
      return (await import('./trace-svg.js')).traceSvg(rest);
    case 'help':
    case '--help':
    case '-h':
      process.stdout.write(USAGE + '\n');
      return;
    case 'version':
    case '--version':
    case '-V':
      process.stdout.write(packageVersion() + '\n');
      return;
    case undefined:
      throw new UsageError(USAGE);
    default:
      throw new UsageError(`mob: unknown command '${command}'; try mob --help`);
  }
}

main(process.argv.slice(2)).catch((error: unknown) => {
  if (error instanceof HelpRequested) {
    process.stdout.write(error.text + '\n');
    return;
  }
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
