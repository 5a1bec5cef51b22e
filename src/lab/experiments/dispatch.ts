import { Interest, Trigger } from '../../poll/index.js';
import { interestBit } from '../capabilities.js';
import { countOf, type Experiment, type Lab, type Pair } from '../harness.js';

const SERVER = 1;

export const dispatch: Experiment = {
  name: 'dispatch',
  summary: "EV_DISPATCH against EV_ONESHOT: both give one event, but ONESHOT deletes kqueue's knote and DISPATCH only disables it, which is what EPOLLONESHOT does",
  async run(lab) {
    const dispatchBit = interestBit('DISPATCH');
    if ('missing' in dispatchBit) return lab.skip(dispatchBit.missing);
    const poll = lab.newPoll();
    lab.name(SERVER, 'server');

    lab.note('part 1: ONESHOT');
    const a = await lab.pair();
    await oneEventThenSilence(lab, poll, a, Trigger.EDGE_ONESHOT);
    lab.note(lab.backend === 'epoll'
      ? 'epoll: EPOLLONESHOT disarmed the registration and kept it (see `oneshot`: EPOLL_CTL_ADD now says EEXIST)'
      : "kqueue: EV_ONESHOT deleted the knote as it fired: the re-arm above was a new EV_ADD, a knote allocated afresh each time");
    lab.deregister(poll, a.server);

    lab.note('part 2: DISPATCH');
    const b = await lab.pair();
    await oneEventThenSilence(lab, poll, b, Trigger.EDGE | dispatchBit.bit);
    lab.note(lab.backend === 'epoll'
      ? 'epoll has no EV_DISPATCH: EPOLLONESHOT already keeps the registration, so the addon uses it for both'
      : lab.libkqueue
        ? 'libkqueue: EV_DISPATCH disabled the knote, but EV_ADD would re-enable it with the old udata, so the addon deletes and re-adds it: here DISPATCH costs what ONESHOT does (a BSD kernel re-arms the same knote with EV_ENABLE)'
        : 'kqueue: EV_DISPATCH only disabled the knote; EV_ENABLE re-armed the same one: no allocation, the same udata');
    lab.deregister(poll, b.server);
  },
};

/** Register with `trigger`, take one event, show silence while disarmed, re-arm, see it fire at once. */
async function oneEventThenSilence(lab: Lab, poll: ReturnType<Lab['newPoll']>, pair: Pair, trigger: number): Promise<void> {
  lab.register(poll, pair.server, SERVER, Interest.READABLE, trigger);
  lab.write(pair.client, -1, 10);
  let events = lab.wait(poll, 1000);
  lab.write(pair.client, -1, 10);
  await lab.sleep(10);
  const silent = lab.wait(poll, 50);
  lab.expect(countOf(events, SERVER) === 1 && silent.length === 0, 'one event, then silence while disarmed, though more data came',
    '1 event, then 0', `${countOf(events, SERVER)}, then ${silent.length}`);
  lab.reregister(poll, pair.server, SERVER, Interest.READABLE, trigger);
  events = lab.wait(poll, 0);
  lab.expect(countOf(events, SERVER) === 1, 're-armed with data waiting, it fires at once', '1 event', `${countOf(events, SERVER)}`);
  lab.drain(pair.server, SERVER);
}
