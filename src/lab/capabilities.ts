// Interest bits that only some builds and kernels have (EPOLLEXCLUSIVE, EV_DISPATCH, RDHUP off):
// an experiment that needs one asks here and skips, saying why, when it is missing.
import { InterestBits } from '../native/binding.js';

export type OptionalInterest = 'EXCLUSIVE' | 'DISPATCH' | 'RDHUP';

/** The addon's bit for `name`, or null if this build does not know it. */
export function interestBit(name: OptionalInterest): number | null {
  const value = (InterestBits as Readonly<Record<string, number | undefined>>)[name];
  return typeof value === 'number' ? value : null;
}
