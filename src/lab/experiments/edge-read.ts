import { native } from '../../native/binding.js';
import { Ready } from '../../poll/index.js';
import { countOf, flagsOf, type Experiment } from '../harness.js';

const SERVER = 1;

export const edgeRead: Experiment = {
  name: 'edge-read',
  summary: 'edge-triggered read: one event per arrival of data; a reader that does not drain hangs, one that reads until EAGAIN does not',
  async run(lab) {
    const { client, server, poll } = await lab.watchedServer();

    let events = lab.wait(poll, 0);
    lab.expect(events.length === 0, 'an empty receive buffer raises no event', '0 events', `${events.length}`);

    lab.note('the peer sends 100 bytes: the receive buffer goes from empty to non-empty');
    lab.write(client, -1, 100);
    events = lab.wait(poll, 1000);
    lab.expect(countOf(events, SERVER) === 1 && (flagsOf(events, SERVER) & Ready.READABLE) !== 0,
      'empty -> non-empty raises one READABLE event', '1 READABLE event', `${events.length} event(s)`);

    lab.note('nobody reads, nothing new arrives: wait again');
    events = lab.wait(poll, 50);
    lab.expect(events.length === 0, 'unread data raises no second event by itself (that is the edge)', '0 events', `${events.length}`);

    lab.note('the peer sends 100 more bytes while the first 100 are still unread');
    lab.write(client, -1, 100);
    events = lab.wait(poll, 200);
    const pending = native.bytesReadable(server);
    // Measured, not assumed: both backends signal every arrival, drained or not. The seed
    // article says the opposite ("another event will not be triggered"). This is today's
    // implementation, not the contract: epoll(7) only says events "can be generated" per chunk.
    lab.expect(countOf(events, SERVER) === 1,
      'a new arrival raises a new event although the buffer was never drained (implementation: the contract says only that it can)',
      '1 event', `${countOf(events, SERVER)} event(s), ${pending} bytes waiting`);

    lab.note('a reader that takes 64 bytes per event and then waits for the next one');
    lab.read(server, SERVER, 64);
    lab.note('the peer has gone quiet');
    events = lab.wait(poll, 100);
    const stranded = native.bytesReadable(server);
    lab.expect(events.length === 0 && stranded > 0,
      'with data still buffered and the peer quiet, the next wait hangs (here: times out): this part is the contract',
      `0 events and bytes waiting`, `${events.length} event(s), ${stranded} bytes waiting`);

    lab.note('the fix: read until EAGAIN');
    const drained = lab.drain(server, SERVER);
    lab.expect(drained.bytes === stranded && drained.last === -native.errno.EAGAIN,
      'draining takes everything and ends in EAGAIN', `${stranded} bytes then EAGAIN`,
      `${drained.bytes} bytes then ${native.errnoName(-drained.last)}`);

    lab.note('buffer empty again: the next arrival is a new edge');
    lab.write(client, -1, 10);
    events = lab.wait(poll, 1000);
    lab.expect(countOf(events, SERVER) === 1, 'after draining, the next arrival raises an event', '1 event', `${countOf(events, SERVER)}`);
    lab.drain(server, SERVER);
  },
};
