// What Linux's /proc says about a process (the server under test): memory, descriptors, CPU.
import { readdirSync, readFileSync } from 'node:fs';

/** Resident memory in KiB: all of it (VmRSS), and the anonymous part (RssAnon). */
export function rssKiB(pid: number): { total: number; anon: number } {
  const status = readFileSync(`/proc/${pid}/status`, 'utf8');
  const field = (name: string) => Number(new RegExp(`${name}:\\s+(\\d+)\\s+kB`).exec(status)?.[1] ?? NaN);
  return { total: field('VmRSS'), anon: field('RssAnon') };
}

/** Open descriptors. */
export function fdCount(pid: number): number {
  return readdirSync(`/proc/${pid}/fd`).length;
}

/** User + system CPU time in clock ticks (100/s), or NaN once the process is gone. */
export function cpuTicks(pid: number): number {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    return Number(fields[11]) + Number(fields[12]);
  } catch {
    return NaN;
  }
}
