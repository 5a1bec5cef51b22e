// Interest bits that only some builds and kernels have (EPOLLEXCLUSIVE, EV_DISPATCH, RDHUP off):
// an experiment that needs one asks here and skips, saying why, when it is missing.
import { InterestBits, native } from '../native/binding.js';

export type OptionalInterest = 'EXCLUSIVE' | 'DISPATCH' | 'NO_RDHUP';

/** The addon's bit for `name` if this build knows it and this backend honours it; else why not. */
export function interestBit(name: OptionalInterest): { bit: number } | { missing: string } {
  const bit = (InterestBits as Readonly<Record<string, number | undefined>>)[name];
  if (typeof bit !== 'number') return { missing: `this build of the addon has no ${name} interest bit` };
  const honoured = (native as { capabilities?: { interest?: number } }).capabilities?.interest;
  if (honoured === undefined) return { missing: `this build of the addon does not say which interest bits it honours (no capabilities), so not ${name}` };
  if ((honoured & bit) === 0) return { missing: `${native.backend} does not honour ${name} (native.capabilities)` };
  return { bit };
}
