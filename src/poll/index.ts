export { Poll, Registry, type RegistryObserver } from './poll.js';
export { Events, Ready, describeReady } from './events.js';
export { Interest, Trigger, Option, describeInterest } from './interest.js';
export { type Token, MAX_TOKEN, makeToken } from './token.js';
