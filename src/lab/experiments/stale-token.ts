import { native, TWO_POW_32 } from '../../native/binding.js';
import { Interest, Ready, Trigger, describeReady } from '../../poll/index.js';
import { Slab, type Slotted } from '../../server/native/slab.js';
import type { Poll } from '../../poll/index.js';
import type { Lab, LabEvent } from '../harness.js';
import type { Experiment } from '../harness.js';


class Conn implements Slotted {
  slot = -1;
  generation = 0;
  token = -1;
  liveIndex = -1;
  constructor(readonly fd: number, readonly writeFd: number) {}
}

export const staleToken: Experiment = {
  name: 'stale-token',
  summary: "the seeds' race: one batch holds a read that fails and a write event for the same token; remove the connection, ignore the stale token",
  async run(lab) {
    const victim = await lab.pair();
    const newcomer = await lab.pair();
    const poll = lab.newPoll();
    const slab = new Slab<Conn>();

    // epoll merges a registration's readiness into one event; to get the seed's two events
    // for one token, register a dup of the socket for WRITABLE under the same token.
    // kqueue needs no trick: its read and write filters are separate events already.
    const writeFd = lab.backend === 'epoll' ? lab.dup(victim.server) : victim.server;
    const conn = slab.insert(new Conn(victim.server, writeFd));
    lab.note(`connection A: fd ${conn.fd} in slab slot ${conn.slot}, generation ${conn.generation}: token ${conn.slot}/${conn.generation}`);
    if (lab.backend === 'epoll') {
      lab.register(poll, writeFd, conn.token, Interest.WRITABLE, Trigger.EDGE);
      lab.register(poll, conn.fd, conn.token, Interest.READABLE, Trigger.EDGE);
    } else {
      lab.register(poll, conn.fd, conn.token, Interest.BOTH, Trigger.EDGE);
    }
    lab.note('the registration\'s first WRITABLE event (empty send buffer), handled: nothing to write');
    lab.wait(poll, 1000);

    lab.note('the client sends some data and resets the connection');
    lab.write(victim.client, -1, 100);
    await lab.sleep(10);
    lab.reset(victim.client);
    await lab.sleep(10);
    const batch = lab.wait(poll, 1000);
    const forA = batch.filter((event) => event.token === conn.token);
    lab.expect(forA.length === 2 && forA.some((e) => (e.flags & Ready.READABLE) !== 0) && forA.some((e) => (e.flags & Ready.WRITABLE) !== 0),
      'one batch holds a read event and a write event for the same token', '2 events (READABLE, WRITABLE)',
      forA.map((e) => describeReady(e.flags)).join(' + ') || 'none');

    let stale = 0;
    let reused: Conn | null = null;
    for (const event of batch) {
      const outcome = handle(lab, poll, slab, event);
      if (outcome === 'stale') stale++;
      if (outcome === 'removed') {
        lab.note('later in the same batch the listener accepts client B; the slab hands it the freed slot');
        reused = slab.insert(new Conn(newcomer.server, newcomer.server));
        lab.register(poll, reused.fd, reused.token, Interest.READABLE, Trigger.EDGE);
        lab.note(`connection B: fd ${reused.fd} in slot ${reused.slot}, generation ${reused.generation}: token ${reused.slot}/${reused.generation}`);
      }
    }
    lab.expect(stale === 1, "the event after the failed read is recognised as stale and ignored (no panic, no lookup into nothing)", '1 stale event', `${stale}`);
    if (reused !== null) {
      lab.expect(reused.slot === conn.slot && reused.token !== conn.token,
        'the slot was reused, but the generation makes the old token different', `slot ${conn.slot}, a new token`,
        `slot ${reused.slot}, token ${reused.slot}/${reused.generation}`);
      lab.note(`a slab indexed by slot alone — the seed's \`self.conns.contains(token)\` — would have said "present" and handed A's write event to B (fd ${reused.fd})`);
      lab.deregister(poll, reused.fd);
    }
  },
};

/** A loop's dispatch, just enough of it: read on READABLE, write on WRITABLE, remove on failure. */
function handle(lab: Lab, poll: Poll, slab: Slab<Conn>, event: LabEvent): 'stale' | 'removed' | 'ok' {
  const slot = event.token % TWO_POW_32;
  const generation = Math.floor(event.token / TWO_POW_32);
  const conn = slab.get(slot, generation);
  if (conn === null) {
    lab.timeline.stale(event.token, event.flags);
    return 'stale';
  }
  let result: number;
  if (event.flags & Ready.READABLE) {
    result = lab.drain(conn.fd, conn.token).last;
  } else {
    result = lab.write(conn.writeFd, conn.token, 100);
  }
  if (result === -native.errno.EAGAIN || result > 0) return 'ok';
  lab.note(`connection ${slot}/${generation} failed (${result < 0 ? native.errnoName(-result) : 'EOF'}): deregister, close, remove from the slab now`);
  if (conn.writeFd !== conn.fd) {
    lab.deregister(poll, conn.writeFd);
    lab.close(conn.writeFd, conn.token);
  }
  lab.deregister(poll, conn.fd);
  lab.close(conn.fd, conn.token);
  slab.remove(conn);
  return 'removed';
}
