// The package's root: a mio-like poller on raw epoll/kqueue, and the addon's socket calls,
// for programs that run their own loop. Importing this module never loads the addon: the
// first Poll, or the first use of a `native` member, does (MOB_NO_ADDON if there is none).
// The server is `<package>/server`, the wire format `<package>/protocol`.
export { Poll, Registry, Events, Ready, Interest, Trigger, MAX_TOKEN, makeToken, describeReady, describeInterest } from './poll/index.js';
export type { Token, RegistryObserver } from './poll/index.js';
export {
  native, loadNative, loadBinding,
  type NativeBinding, type Poller, type SocketAddress, type SocketDescription, type Capabilities, type LoadedBinding,
} from './native/binding.js';
export { errno, InterestBits, EventBits, EVENT_STRIDE, type ErrnoConstants } from './native/constants.js';
