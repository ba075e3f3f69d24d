// Time as the host sees it, in nanoseconds (BigInt).
import { host } from './host.js';

/** A clock shared by every instance; for durations only. */
export const monotonicNow = () => host().monotonicNow();
/** Since the Unix epoch (UTC); can jump. */
export const wallNow = () => host().wallNow();
