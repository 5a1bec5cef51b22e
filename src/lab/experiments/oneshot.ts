import { native } from '../../native/binding.js';
import { Interest, Trigger } from '../../poll/index.js';
import { countOf, type Experiment } from '../harness.js';

const SERVER = 1;

export const oneshot: Experiment = {
  name: 'oneshot',
  summary: 'oneshot: one event, then silence until re-armed; re-arming fires at once if data is waiting',
  async run(lab) {
    const { client, server } = await lab.pair();
    const poll = lab.newPoll();
    lab.name(SERVER, 'server');
    lab.register(poll, server, SERVER, Interest.READABLE, Trigger.ONESHOT);

    lab.write(client, -1, 10);
    let events = lab.wait(poll, 1000);
    lab.expect(countOf(events, SERVER) === 1, 'the first arrival raises one event', '1 event', `${countOf(events, SERVER)}`);

    lab.note('more data arrives; the registration is disarmed');
    lab.write(client, -1, 10);
    await lab.sleep(10);
    events = lab.wait(poll, 50);
    const waiting = native.bytesReadable(server);
    lab.expect(events.length === 0, 'a disarmed registration stays silent even as data arrives (level-triggered, too)', '0 events',
      `${events.length} event(s), ${waiting} bytes waiting`);

    lab.note('re-arm with the same interest');
    lab.reregister(poll, server, SERVER, Interest.READABLE, Trigger.ONESHOT);
    events = lab.wait(poll, 0);
    lab.expect(countOf(events, SERVER) === 1, 're-arming with data waiting fires at once (a zero-timeout wait sees it)', '1 event',
      `${countOf(events, SERVER)}`);

    lab.drain(server, SERVER);
    lab.reregister(poll, server, SERVER, Interest.READABLE, Trigger.ONESHOT);
    events = lab.wait(poll, 50);
    lab.expect(events.length === 0, 're-arming with nothing waiting fires nothing', '0 events', `${events.length}`);
    lab.write(client, -1, 10);
    events = lab.wait(poll, 1000);
    lab.expect(countOf(events, SERVER) === 1, 'the re-armed registration reports the next arrival', '1 event', `${countOf(events, SERVER)}`);
    lab.drain(server, SERVER);
  },
};
