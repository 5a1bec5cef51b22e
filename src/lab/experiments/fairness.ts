import { native } from '../../native/binding.js';
import { Interest, Trigger } from '../../poll/index.js';
import { countOf, type Experiment } from '../harness.js';

const FAST = 1;
const QUIET = 2;
const CHUNK = 16 * 1024;
/** Reads a loop will make on one socket before it gives up waiting for EAGAIN, in part 1. */
const PATIENCE = 64;
/** Bytes read from one socket per turn in part 2 (mob's READ_BUDGET is 256 KiB). */
const BUDGET = 64 * 1024;

export const fairness: Experiment = {
  name: 'fairness',
  summary: 'starvation: "read until EAGAIN" never ends while a fast peer keeps up, and the other sockets wait; a read budget per turn, and a list of sockets to read on, is why mob has one',
  async run(lab) {
    const fast = await lab.pair();
    const quiet = await lab.pair();
    const poll = lab.newPoll();
    lab.name(FAST, 'fast');
    lab.name(QUIET, 'quiet');
    lab.register(poll, fast.server, FAST, Interest.READABLE, Trigger.EDGE);
    lab.register(poll, quiet.server, QUIET, Interest.READABLE, Trigger.EDGE);
    const buf = Buffer.allocUnsafe(CHUNK);
    const refill = Buffer.alloc(CHUNK, 0x66);

    lab.note('part 1: fast\'s peer sends 64 KiB, quiet\'s peer 10 bytes; one batch reports both');
    lab.write(fast.client, -1, 64 * 1024);
    lab.write(quiet.client, -1, 10);
    await lab.sleep(10);
    let events = lab.wait(poll, 1000);
    lab.note(`the loop reads fast until EAGAIN, ${CHUNK} bytes a read; its peer sends ${CHUNK} more after each read (a sender on another core that keeps up)`);
    let reads = 0;
    let last = 0;
    while (reads < PATIENCE) {
      last = native.read(fast.server, buf, 0, CHUNK);
      if (last <= 0) break;
      reads++;
      native.write(fast.client, refill, 0, CHUNK);
    }
    lab.note(`${reads} reads on fast, last: ${last < 0 ? native.errnoName(-last) : `${last} bytes`}; the loop gives up waiting for EAGAIN here`);
    const starving = native.bytesReadable(quiet.server);
    lab.expect(reads === PATIENCE && last > 0 && starving === 10, 'EAGAIN never came: quiet\'s 10 bytes are still waiting, for as long as fast\'s peer keeps up',
      `${PATIENCE} reads without EAGAIN, 10 bytes waiting on quiet`, `${reads} reads, ${starving} bytes waiting on quiet`);
    lab.note('(the peer stops; both are drained before part 2)');
    lab.drain(fast.server, FAST, 65536, true);
    lab.drain(quiet.server, QUIET);
    lab.waitQuietly(poll, 0);

    lab.note(`part 2: the same batch, read with a budget of ${BUDGET} bytes per socket per turn; fast's peer has sent 256 KiB and stopped`);
    // All of it in the receive buffer before the loop looks: bytes still on their way would
    // arrive as the loop reads and raise a new edge, which is not the point here.
    native.setsockopt(fast.server, native.sockopt.SOL_SOCKET, native.sockopt.SO_RCVBUF, 1024 * 1024);
    lab.write(fast.client, -1, 256 * 1024);
    lab.write(quiet.client, -1, 10);
    for (let i = 0; i < 100 && native.bytesReadable(fast.server) < 256 * 1024; i++) await lab.sleep(10);
    events = lab.wait(poll, 1000);
    const unfinished: number[] = [];
    for (const token of [FAST, QUIET]) {
      if (countOf(events, token) === 0) continue;
      const fd = token === FAST ? fast.server : quiet.server;
      let budget = BUDGET;
      let n = 0;
      while (budget > 0) {
        n = lab.read(fd, token, Math.min(CHUNK, budget));
        if (n <= 0) break;
        budget -= n;
      }
      if (budget <= 0) {
        lab.timeline.readBudget('spent', fd, token, BUDGET);
        unfinished.push(token);
      }
    }
    const served = native.bytesReadable(quiet.server) === 0;
    lab.expect(served && unfinished.includes(FAST), 'quiet is served in the first turn; fast, its budget spent, goes on a list to read on',
      'quiet read, fast listed', `quiet ${served ? 'read' : 'still waiting'}, list: ${unfinished.map((t) => (t === FAST ? 'fast' : 'quiet')).join(', ') || 'empty'}`);
    const left = native.bytesReadable(fast.server);
    events = lab.wait(poll, 50);
    lab.expect(countOf(events, FAST) === 0 && left > 0, 'the next wait says nothing of fast: edge-triggered, and no new data came — only the list remembers it',
      '0 events, bytes waiting', `${countOf(events, FAST)} event(s), ${left} bytes waiting`);
    lab.timeline.readBudget('resume', fast.server, FAST, BUDGET);
    const rest = lab.drain(fast.server, FAST, 65536, true);
    lab.expect(rest.last === -native.errno.EAGAIN, 'read on from the list, it drains to EAGAIN (mob: `unfinished`, read on in setImmediate)', 'EAGAIN',
      rest.last < 0 ? native.errnoName(-rest.last) : String(rest.last));
  },
};
