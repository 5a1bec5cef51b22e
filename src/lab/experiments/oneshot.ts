import { native } from '../../native/binding.js';
import { Interest, Trigger } from '../../poll/index.js';
import { countOf, type Experiment } from '../harness.js';

const SERVER = 1;

export const oneshot: Experiment = {
  name: 'oneshot',
  summary: 'edge+oneshot, as the seeds registered: one event, then silence until re-armed; re-arming fires at once if data is waiting',
  async run(lab) {
    lab.note('edge-triggered and oneshot, as mio 0.5 code did (PollOpt::edge() | PollOpt::oneshot())');
    const { client, server, poll } = await lab.watchedServer(Trigger.EDGE_ONESHOT);

    lab.write(client, -1, 10);
    let events = lab.wait(poll, 1000);
    lab.expect(countOf(events, SERVER) === 1, 'the first arrival raises one event', '1 event', `${countOf(events, SERVER)}`);

    lab.note('more data arrives; the registration is disarmed');
    lab.write(client, -1, 10);
    await lab.sleep(10);
    events = lab.wait(poll, 50);
    const waiting = native.bytesReadable(server);
    lab.expect(events.length === 0, 'a disarmed registration stays silent even as new data arrives (an edge would otherwise fire)', '0 events',
      `${events.length} event(s), ${waiting} bytes waiting`);
    if (lab.backend === 'epoll') {
      lab.note('is it still registered? EPOLL_CTL_ADD again');
      const again = lab.attempt(() => lab.register(poll, server, SERVER, Interest.READABLE, Trigger.EDGE_ONESHOT));
      lab.expect(again === 'EEXIST', 'EPOLLONESHOT disarms, it does not remove: the fd is still in the interest list (kqueue\'s EV_ONESHOT deletes the knote; EV_DISPATCH is the counterpart, see `dispatch`)',
        'EEXIST', again);
    } else {
      lab.note("kqueue's EV_ONESHOT deleted the knote when it fired; re-arming is a fresh EV_ADD (EV_DISPATCH would only disable it: see `dispatch`)");
    }

    lab.note('re-arm with the same interest');
    lab.reregister(poll, server, SERVER, Interest.READABLE, Trigger.EDGE_ONESHOT);
    events = lab.wait(poll, 0);
    lab.expect(countOf(events, SERVER) === 1, 're-arming with data waiting fires at once (a zero-timeout wait sees it): nothing that came while disarmed is lost',
      '1 event', `${countOf(events, SERVER)}`);

    lab.drain(server, SERVER);
    lab.reregister(poll, server, SERVER, Interest.READABLE, Trigger.EDGE_ONESHOT);
    events = lab.wait(poll, 50);
    lab.expect(events.length === 0, 're-arming with nothing waiting fires nothing', '0 events', `${events.length}`);
    lab.write(client, -1, 10);
    events = lab.wait(poll, 1000);
    lab.expect(countOf(events, SERVER) === 1, 'the re-armed registration reports the next arrival', '1 event', `${countOf(events, SERVER)}`);
    lab.drain(server, SERVER);
    lab.note('why oneshot exists: with several threads waiting on ONE poller, an event goes to one thread and the disarmed registration keeps the others off that socket until the first re-arms it; one thread per poller, as mob, needs none of it');
  },
};
