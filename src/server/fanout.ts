// PLACEHOLDER until `core` lands the seam (commit "seam: …"): the interfaces exactly as agreed
// in the brief, so the scale-out layer can be written against them. Take core's file on merge.
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
