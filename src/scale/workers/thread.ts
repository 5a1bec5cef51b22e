// Starts a worker thread from a module URL, built (.js) or source (.ts under tsx: the tests and
// scripts). Node 20 does not carry tsx's loader into worker threads, so a .ts entry is reached
// through a tiny bootstrap that registers it first.
import { Worker, type WorkerOptions } from 'node:worker_threads';

export function startThread(entry: URL, options: WorkerOptions = {}): Worker {
  if (!entry.pathname.endsWith('.ts')) return new Worker(entry, options);
  const api = import.meta.resolve('tsx/esm/api');
  const bootstrap = `import(${JSON.stringify(api)}).then(({ register }) => { register(); return import(${JSON.stringify(entry.href)}); })`;
  return new Worker(bootstrap, { ...options, eval: true });
}
