// The experiments, in the order the guide (docs/edge-triggered.md) walks through them.
import type { Experiment } from './harness.js';
import { edgeRead } from './experiments/edge-read.js';
import { levelVsEdge } from './experiments/level-vs-edge.js';
import { writeReady } from './experiments/write-ready.js';
import { hangup } from './experiments/hangup.js';
import { oneshot } from './experiments/oneshot.js';
import { edgeListener } from './experiments/edge-listener.js';
import { staleToken } from './experiments/stale-token.js';
import { dupFd } from './experiments/dup-fd.js';
import { herd } from './experiments/herd.js';
import { reuseport } from './experiments/reuseport.js';
import { spurious } from './experiments/spurious.js';
import { rdhup } from './experiments/rdhup.js';
import { fairness } from './experiments/fairness.js';
import { rearmCost } from './experiments/rearm-cost.js';
import { fork } from './experiments/fork.js';
import { dispatch } from './experiments/dispatch.js';
import { lowat } from './experiments/lowat.js';

export { runExperiment, type Experiment, type LabResult } from './harness.js';

export const experiments: readonly Experiment[] = [
  edgeRead, levelVsEdge, writeReady, hangup, oneshot, edgeListener, staleToken, dupFd,
  dispatch, rdhup, spurious, fairness, rearmCost, herd, reuseport, fork, lowat,
];

export function findExperiment(name: string): Experiment | undefined {
  return experiments.find((experiment) => experiment.name === name);
}
