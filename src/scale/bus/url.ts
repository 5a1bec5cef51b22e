// The --bus address: redis://[user:pass@]host:port[/db] or rediss:// (TLS). Checked here so a typo
// is a usage error at start-up, not a reconnect loop; shown without its password in logs.
export class BusUrlError extends Error {}

export interface BusAddress {
  /** As given, handed to the Redis client (which reads user, password, db and TLS from it). */
  url: string;
  /** For logs and metrics: the password replaced by '***'. */
  display: string;
}

export function parseBusUrl(text: string): BusAddress {
  let url: URL;
  try {
    url = new URL(text);
  } catch {
    throw new BusUrlError(`--bus wants redis://[user:pass@]host:port[/db] or rediss://…, not '${text}'`);
  }
  if (url.protocol !== 'redis:' && url.protocol !== 'rediss:') {
    throw new BusUrlError(`--bus speaks redis:// or rediss:// (Redis or Valkey), not '${url.protocol}//'`);
  }
  if (url.hostname === '') throw new BusUrlError(`--bus ${text} names no host`);
  const db = url.pathname.replace(/^\//, '');
  if (db !== '' && !/^\d+$/.test(db)) throw new BusUrlError(`--bus database must be a number, not '${db}'`);
  if (url.password !== '') url.password = '***';
  return { url: text, display: url.toString() };
}
