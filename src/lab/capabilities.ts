// Interest bits that only some backends honour (EPOLLEXCLUSIVE and RDHUP off are epoll's):
// an experiment that needs one asks here and skips, saying why, when it is missing.
import { InterestBits, native } from '../native/binding.js';

export type OptionalInterest = 'EXCLUSIVE' | 'DISPATCH' | 'NO_RDHUP';

/** The addon's bit for `name` if this backend honours it; else why not (capabilities). */
export function interestBit(name: OptionalInterest): { bit: number } | { missing: string } {
  const bit = InterestBits[name];
  if ((native.capabilities.interest & bit) === 0) return { missing: `${native.backend} does not honour ${name} (native.capabilities)` };
  return { bit };
}
