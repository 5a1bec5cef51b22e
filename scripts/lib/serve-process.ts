// `mob serve` as a child process, for the tests, the soak and the benchmark: started from the
// build, ready once it prints its "listening on HOST:PORT" line.
import { spawn, type ChildProcess } from 'node:child_process';
import { fileURLToPath } from 'node:url';

export const cliPath = fileURLToPath(new URL('../../dist/cli/main.js', import.meta.url));

export interface ServeProcess {
  child: ChildProcess;
  port: number;
  /** Everything the server wrote to stderr so far. */
  stderr: () => string;
  /** And to stdout ("metrics on …", "listening on …"). */
  stdout: () => string;
}

export interface ServeOptions {
  env?: NodeJS.ProcessEnv;
  /** Wraps the command line, e.g. in `prlimit --nofile=N:N`. */
  wrap?: (argv: string[]) => string[];
  /** Another build's dist/cli/main.js, for before/after figures (scripts' --cli). */
  cli?: string;
  timeoutMs?: number;
}

export function spawnServe(args: string[], options: ServeOptions = {}): Promise<ServeProcess> {
  const { env = {}, wrap = (argv) => argv, cli = cliPath, timeoutMs = 10_000 } = options;
  const [command, ...argv] = wrap([process.execPath, cli, 'serve', '--port', '0', ...args]);
  const child = spawn(command!, argv, { env: { ...process.env, ...env }, stdio: ['ignore', 'pipe', 'pipe'] });
  let stdout = '';
  let stderr = '';
  child.stderr!.on('data', (d: Buffer) => (stderr += d));
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => {
      child.kill('SIGKILL');
      reject(new Error(`server did not start in ${timeoutMs} ms: ${stderr}`));
    }, timeoutMs);
    child.stdout!.on('data', (d: Buffer) => {
      stdout += d;
      // Under --trace=json the line is a JSON record, {"type":"listening",...,"port":N}.
      const match = /listening on .*:(\d+)|"type":"listening".*"port":(\d+)/.exec(stdout);
      if (match) {
        clearTimeout(timer);
        resolve({ child, port: Number(match[1] ?? match[2]), stderr: () => stderr, stdout: () => stdout });
      }
    });
    child.once('exit', (code) => {
      clearTimeout(timer);
      reject(new Error(`server exited with ${code}: ${stderr}`));
    });
  });
}

/** SIGTERM, then SIGKILL if it has not exited after `graceMs`. */
export async function stopServe(child: ChildProcess, graceMs = 5000): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return;
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  child.kill('SIGTERM');
  const timer = setTimeout(() => child.kill('SIGKILL'), graceMs);
  await exited;
  clearTimeout(timer);
}
