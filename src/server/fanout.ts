// PLACEHOLDER until `core` lands the seam (SEAM.md): the bus codes against this; on `git merge core`
// core's file replaces this one.
/** A destination beyond this process's (or worker's) own clients: a peer-worker link or the bus. */
export interface Relay {
  readonly name: string;
  publish(frames: Buffer, start: number, end: number): boolean;
}

/** What a server, either engine, offers the scale-out layer. */
export interface FanoutHost {
  deliver(frames: Buffer, start: number, end: number): void;
  addRelay(relay: Relay): void;
  removeRelay(relay: Relay): void;
  dropAllClients(reason: string): void;
}
