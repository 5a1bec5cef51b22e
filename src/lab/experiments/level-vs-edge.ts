import { native } from '../../native/binding.js';
import { Interest, Trigger } from '../../poll/index.js';
import { countOf, type Experiment } from '../harness.js';

const LEVEL = 1;
const EDGE = 2;
const ROUNDS = 5;

export const levelVsEdge: Experiment = {
  name: 'level-vs-edge',
  summary: 'the same traffic on a level-triggered and an edge-triggered socket, side by side: event counts',
  async run(lab) {
    const level = await lab.pair();
    const edge = await lab.pair();
    const poll = lab.newPoll();
    lab.name(LEVEL, 'level');
    lab.name(EDGE, 'edge');
    lab.register(poll, level.server, LEVEL, Interest.READABLE, Trigger.LEVEL);
    lab.register(poll, edge.server, EDGE, Interest.READABLE, Trigger.EDGE);

    lab.note('300 bytes to each; then each round, every socket with an event reads just 32 bytes');
    lab.write(level.client, -1, 300);
    lab.write(edge.client, -1, 300);
    await lab.sleep(10);
    const counts = { [LEVEL]: 0, [EDGE]: 0 };
    for (let round = 1; round <= ROUNDS; round++) {
      lab.note(`round ${round}`);
      const events = lab.wait(poll, 50);
      for (const token of [LEVEL, EDGE] as const) {
        const n = countOf(events, token);
        counts[token] += n;
        if (n > 0) lab.read(token === LEVEL ? level.server : edge.server, token, 32);
      }
    }
    lab.note(`events in ${ROUNDS} rounds: level ${counts[LEVEL]}, edge ${counts[EDGE]}; still buffered: level ${native.bytesReadable(level.server)}, edge ${native.bytesReadable(edge.server)}`);
    lab.expect(counts[LEVEL] === ROUNDS, 'level-triggered reports the socket on every wait while data remains', `${ROUNDS} events`, `${counts[LEVEL]}`);
    lab.expect(counts[EDGE] === 1, 'edge-triggered reports it once, however much is left', '1 event', `${counts[EDGE]}`);

    lab.note('both drained until EAGAIN');
    lab.drain(level.server, LEVEL);
    lab.drain(edge.server, EDGE);
    const quiet = lab.wait(poll, 50);
    lab.expect(quiet.length === 0, 'once drained, neither is reported', '0 events', `${quiet.length}`);

    lab.note('10 more bytes to each');
    lab.write(level.client, -1, 10);
    lab.write(edge.client, -1, 10);
    await lab.sleep(10);
    const fresh = lab.wait(poll, 1000);
    lab.expect(countOf(fresh, LEVEL) === 1 && countOf(fresh, EDGE) === 1, 'a new arrival is reported by both', '1 event each',
      `level ${countOf(fresh, LEVEL)}, edge ${countOf(fresh, EDGE)}`);
  },
};
