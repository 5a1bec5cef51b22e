// `mob lab --all | head -2`: once the reader has gone, the rest of the output has nowhere to go.
// Node reports that as an EPIPE 'error' on stdout, which, unhandled, ends the process with a
// stack trace; a command line tool should just stop, as it would on SIGPIPE.
export function endQuietlyOnClosedPipe(stream: NodeJS.WriteStream = process.stdout): void {
  stream.on('error', (error: NodeJS.ErrnoException) => {
    if (error.code !== 'EPIPE') throw error;
    process.exit(process.exitCode ?? 0);
  });
}
