import { native, TWO_POW_32 } from '../../native/binding.js';
import { Interest, Ready, Trigger, describeReady, makeToken, type Poll } from '../../poll/index.js';
import type { Lab, LabEvent, Experiment } from '../harness.js';

/** A connection of the toy loop below: its socket and where it sits in the table. */
interface Conn {
  name: string;
  fd: number;
  slot: number;
  token: number;
}

/**
 * The smallest table that shows the point: slots are reused, and a generation in the token's
 * high word tells the new tenant of a slot from the connection it replaced. `bySlot` is the
 * seed's `conns.contains(token)`: it looks at the slot alone.
 */
class Connections {
  private readonly slots: (Conn | null)[] = [];
  private readonly generations: number[] = [];
  private readonly free: number[] = [];

  add(name: string, fd: number): Conn {
    const slot = this.free.pop() ?? this.slots.length;
    this.generations[slot] ??= 0;
    const conn = { name, fd, slot, token: makeToken(slot, this.generations[slot]!) };
    this.slots[slot] = conn;
    return conn;
  }

  /** Slot and generation must both match. */
  get(event: LabEvent): Conn | null {
    const conn = this.slots[event.low] ?? null;
    return conn !== null && conn.token === event.token ? conn : null;
  }

  bySlot(event: LabEvent): Conn | null {
    return this.slots[event.low] ?? null;
  }

  remove(conn: Conn): void {
    this.slots[conn.slot] = null;
    this.generations[conn.slot]!++;
    this.free.push(conn.slot);
  }
}

export const staleToken: Experiment = {
  name: 'stale-token',
  summary: "the seeds' race: an event for a connection removed earlier in the same batch, within one token and across tokens; generations tell it from a reused slot",
  async run(lab) {
    const poll = lab.newPoll();
    const table = new Connections();

    lab.note("part 1, one token: connection A is registered READABLE|WRITABLE (as mob's is while output is pending)");
    const a = await lab.pair();
    const connA = table.add('A', a.server);
    lab.register(poll, connA.fd, connA.token, Interest.BOTH, Trigger.EDGE);
    lab.note("the registration's first WRITABLE event (empty send buffer), handled: nothing to write");
    lab.wait(poll, 1000);
    lab.note("A's client sends 100 bytes and resets the connection");
    lab.write(a.client, -1, 100);
    await lab.sleep(10);
    lab.reset(a.client);
    await lab.sleep(10);
    let batch = lab.wait(poll, 1000);
    const forA = batch.filter((event) => event.token === connA.token);
    const both = forA.some((e) => (e.flags & Ready.READABLE) !== 0) && forA.some((e) => (e.flags & Ready.WRITABLE) !== 0);
    if (lab.backend === 'epoll') {
      lab.expect(forA.length === 1 && both, 'epoll merges a registration\'s readiness: ONE event carries READABLE and WRITABLE',
        '1 event with both', forA.map((e) => describeReady(e.flags)).join(' + ') || 'none');
    } else {
      lab.expect(forA.length === 2 && both, 'kqueue has a filter per direction: TWO events for the token, read and write',
        '2 events (READABLE, WRITABLE)', forA.map((e) => describeReady(e.flags)).join(' + ') || 'none');
    }
    let stale = 0;
    for (const event of batch) {
      // A loop's dispatch, as mob's: read on READABLE; then, for the same event, write on WRITABLE.
      if (table.get(event) === null) {
        lab.timeline.stale(event.token, event.flags);
        stale++;
        continue;
      }
      if (event.flags & Ready.READABLE) readOrRemove(lab, poll, table, connA);
      if (event.flags & Ready.WRITABLE) {
        if (table.get(event) === null) {
          lab.note('the same event also says WRITABLE, but A is gone: a handler that wrote now would write to a closed (maybe reused) fd');
          stale++;
        } else {
          const written = lab.write(connA.fd, connA.token, 10);
          if (written < 0) removeConn(lab, poll, table, connA, native.errnoName(-written));
        }
      }
    }
    lab.expect(stale === 1, lab.backend === 'epoll'
      ? 'the WRITABLE half of the same event meets a removed connection: look it up again after each step'
      : 'the write event after the failed read is recognised as stale and ignored', '1 stale use avoided', `${stale}`);

    lab.note("part 2, across tokens (mob's real path): B and C are connected; C sends a frame, B's client resets");
    const b = await lab.pair();
    const c = await lab.pair();
    const newcomer = await lab.pair();
    const connB = table.add('B', b.server);
    const connC = table.add('C', c.server);
    lab.note(`B gets slot ${connB.slot} (A's, freed: generation ${Math.floor(connB.token / TWO_POW_32)}), C slot ${connC.slot}`);
    for (const conn of [connB, connC]) lab.register(poll, conn.fd, conn.token, Interest.READABLE, Trigger.EDGE);
    lab.write(c.client, -1, 20);
    await lab.sleep(10);
    lab.reset(b.client);
    await lab.sleep(10);
    batch = lab.wait(poll, 1000);
    const order = batch.map((e) => table.get(e)?.name ?? '?').join(', ');
    lab.expect(batch.length === 2 && batch[0]!.token === connC.token && batch[1]!.token === connB.token,
      'one batch: C\'s event first (its data came first), then B\'s', 'C, B', order);
    let reused: Conn | null = null;
    let caught = 0;
    for (const event of batch) {
      const conn = table.get(event);
      if (conn === null) {
        const tenant = table.bySlot(event);
        lab.timeline.stale(event.token, event.flags);
        if (tenant !== null) lab.note(`slot ${event.low} now holds ${tenant.name}: a lookup by slot alone — the seed's \`conns.contains(token)\` — would have handed B's event to ${tenant.name}`);
        caught++;
        continue;
      }
      if (conn === connC) {
        lab.drain(connC.fd, connC.token);
        lab.note("C's frame goes to every client: the write to B fails, so B is removed now, mid-batch");
        const written = lab.write(connB.fd, connB.token, 20);
        if (written < 0) removeConn(lab, poll, table, connB, native.errnoName(-written));
        lab.write(connC.fd, connC.token, 20);
        lab.note('then the listener accepts a newcomer in the same batch; the table hands it the freed slot');
        reused = table.add('D', newcomer.server);
        lab.register(poll, reused.fd, reused.token, Interest.READABLE, Trigger.EDGE);
        lab.note(`D: slot ${reused.slot}, generation ${Math.floor(reused.token / TWO_POW_32)}`);
      } else {
        readOrRemove(lab, poll, table, conn);
      }
    }
    lab.expect(caught === 1, "B's own event, later in the batch, is recognised as stale although its slot is taken again",
      '1 stale event', `${caught}`);
    if (reused !== null) {
      lab.expect(reused.slot === connB.slot && reused.token !== connB.token, 'the slot was reused, but the generation makes the old token different',
        `slot ${connB.slot}, a new token`, `slot ${reused.slot}, generation ${Math.floor(reused.token / TWO_POW_32)}`);
    }
  },
};

function readOrRemove(lab: Lab, poll: Poll, table: Connections, conn: Conn): void {
  const last = lab.drain(conn.fd, conn.token).last;
  if (last !== -native.errno.EAGAIN) removeConn(lab, poll, table, conn, last < 0 ? native.errnoName(-last) : 'EOF');
}

function removeConn(lab: Lab, poll: Poll, table: Connections, conn: Conn, why: string): void {
  lab.note(`connection ${conn.name} failed (${why}): deregister, close, free its slot now`);
  lab.deregister(poll, conn.fd);
  lab.close(conn.fd, conn.token);
  table.remove(conn);
}
