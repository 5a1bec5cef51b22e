import { native } from '../../native/binding.js';
import { Interest, Ready, Trigger } from '../../poll/index.js';
import { countOf, flagsOf, type Experiment } from '../harness.js';

const CLIENT = 1;
const SMALL_BUFFER = 64 * 1024;

export const writeReady: Experiment = {
  name: 'write-ready',
  summary: 'write readiness: an event on registration, none after a small write (even once it is sent), a new one only after EAGAIN and the peer draining',
  async run(lab) {
    const { client, server } = await lab.pair();
    // Small buffers keep "fill until EAGAIN" to a few hundred KiB instead of megabytes.
    const { SOL_SOCKET, SO_SNDBUF, SO_RCVBUF } = native.sockopt;
    native.setsockopt(client, SOL_SOCKET, SO_SNDBUF, SMALL_BUFFER);
    native.setsockopt(server, SOL_SOCKET, SO_RCVBUF, SMALL_BUFFER);
    const poll = lab.newPoll();
    lab.name(CLIENT, 'client');
    lab.register(poll, client, CLIENT, Interest.WRITABLE, Trigger.EDGE);

    let events = lab.wait(poll, 1000);
    lab.expect(countOf(events, CLIENT) === 1 && (flagsOf(events, CLIENT) & Ready.WRITABLE) !== 0,
      'registering an empty send buffer raises one WRITABLE event at once', '1 WRITABLE event', `${events.length} event(s)`);
    events = lab.wait(poll, 50);
    lab.expect(events.length === 0, 'and no more while nothing changes', '0 events', `${events.length}`);

    lab.note('a small write, as mob makes: 64 bytes');
    lab.write(client, CLIENT, 64);
    events = lab.wait(poll, 100);
    const unsentAfterSmall = native.bytesUnsent(client);
    lab.note(`unsent bytes in the send buffer now: ${unsentAfterSmall} (loopback delivered and acknowledged them)`);
    lab.expect(countOf(events, CLIENT) === 0,
      'a small write raises no new WRITABLE event, not even once the buffer is empty again',
      '0 events', `${countOf(events, CLIENT)} event(s), ${unsentAfterSmall} bytes unsent`);

    lab.note('the peer does not read; fill the send buffer until EAGAIN');
    const filled = lab.fill(client, CLIENT);
    const unsentFull = native.bytesUnsent(client);
    events = lab.wait(poll, 100);
    lab.expect(filled > 0 && events.length === 0, 'a full send buffer raises nothing', '0 events', `${events.length} (filled ${filled} bytes, ${unsentFull} unsent)`);

    lab.note('the peer reads 16 KiB per round; the writer waits after each');
    let unsentAtEvent = -1;
    let rounds = 0;
    const deadline = Date.now() + 3000;
    while (Date.now() < deadline) {
      rounds++;
      if (lab.read(server, -1, 16 * 1024) === -native.errno.EAGAIN) await lab.sleep(5);
      events = lab.wait(poll, 20);
      if (countOf(events, CLIENT) > 0) {
        unsentAtEvent = native.bytesUnsent(client);
        break;
      }
    }
    lab.expect(unsentAtEvent >= 0, 'once the peer reads and the buffer has room, WRITABLE fires again',
      'a WRITABLE event', unsentAtEvent >= 0 ? `after ${rounds} read(s) by the peer` : 'none within 3 s');
    if (unsentAtEvent >= 0) {
      lab.expect(unsentAtEvent > 0, 'it fires when there is room, not when the send buffer is empty',
        'bytes still unsent', `${unsentAtEvent} bytes unsent at the event`);
    }
    lab.drain(server, -1, 65536, true);
  },
};
