import { performance } from 'node:perf_hooks';
import { native } from '../../native/binding.js';
import { Interest, Trigger, type Poll } from '../../poll/index.js';
import { countOf, type Experiment, type Lab, type Pair } from '../harness.js';

const SERVER = 1;
const MESSAGES = 200;

export const rearmCost: Experiment = {
  name: 'rearm-cost',
  summary: 'the cost of re-arming: a oneshot loop pays one epoll_ctl(MOD)/kevent per event; an edge-triggered loop that drains pays none',
  async run(lab) {
    const pair = await lab.pair();
    const poll = lab.newPoll();
    lab.name(SERVER, 'server');
    lab.note(`${MESSAGES} messages of 1 byte, each waited for, read until EAGAIN, and (oneshot) re-armed; the loops run untraced, then report`);

    lab.register(poll, pair.server, SERVER, Interest.READABLE, Trigger.EDGE_ONESHOT);
    const oneshot = runLoop(lab, poll, pair, true);
    lab.note(`oneshot: ${oneshot.events} events, ${oneshot.rearms} re-arms, ${oneshot.ms.toFixed(2)} ms in all, ${(oneshot.rearmMs * 1000 / MESSAGES).toFixed(2)} µs per re-arm`);
    lab.expect(oneshot.events === MESSAGES && oneshot.rearms === MESSAGES, 'oneshot: every event costs a re-arm, one more syscall per event',
      `${MESSAGES} events, ${MESSAGES} re-arms`, `${oneshot.events} events, ${oneshot.rearms} re-arms`);

    // A fresh registration rather than a MOD from oneshot to edge: libkqueue keeps a filter
    // that was EV_ONESHOT firing only once after EV_ADD changes it to EV_CLEAR.
    lab.deregister(poll, pair.server);
    lab.register(poll, pair.server, SERVER, Interest.READABLE, Trigger.EDGE);
    const edge = runLoop(lab, poll, pair, false);
    lab.note(`edge: ${edge.events} events, ${edge.rearms} re-arms, ${edge.ms.toFixed(2)} ms in all`);
    lab.expect(edge.events === MESSAGES && edge.rearms === 0, 'edge-triggered, draining each time: the same events, no re-arm at all',
      `${MESSAGES} events, 0 re-arms`, `${edge.events} events, ${edge.rearms} re-arms`);
    lab.note('a MOD also re-polls the socket (that is how it fires at once when data waits, see `oneshot`): libuv, level-triggered, calls epoll_ctl only when a watcher\'s interest changes, and mob only when output starts or stops being pending');
  },
};

interface LoopCost {
  events: number;
  rearms: number;
  ms: number;
  rearmMs: number;
}

function runLoop(lab: Lab, poll: Poll, pair: Pair, rearm: boolean): LoopCost {
  const observer = poll.registry.observer;
  poll.registry.observer = null;
  const byte = Buffer.from([0x61]);
  const buf = Buffer.allocUnsafe(64);
  const cost: LoopCost = { events: 0, rearms: 0, ms: 0, rearmMs: 0 };
  const start = performance.now();
  try {
    for (let i = 0; i < MESSAGES; i++) {
      native.write(pair.client, byte, 0, 1);
      const seen = countOf(lab.waitUntraced(poll, 500), SERVER);
      if (seen === 0) break; // a lost event: the check below says so, no need to wait 200 times
      cost.events += seen;
      while (native.read(pair.server, buf, 0, buf.length) > 0);
      if (rearm) {
        const before = performance.now();
        poll.registry.reregister(pair.server, SERVER, Interest.READABLE, Trigger.EDGE_ONESHOT);
        cost.rearmMs += performance.now() - before;
        cost.rearms++;
      }
    }
  } finally {
    poll.registry.observer = observer;
  }
  cost.ms = performance.now() - start;
  return cost;
}
