// State shared by every instance of the plugin, owned by the host. Instances
// are pooled, concurrent and discarded after a fault: anything that must
// outlive one call lives here, never in a module variable. Counters are
// signed 64-bit BigInts; values are Uint8Arrays (or strings, stored as UTF-8).
import { host } from './host.js';

export const MAX_KEY_LEN = 256;
export const MAX_VALUE_LEN = 4096;

export class StateError extends Error {}

const i64 = (v) => BigInt.asIntN(64, BigInt(v));

export const counterGet = (key) => host().counterGet(key);
export const counterAdd = (key, delta) => host().counterAdd(key, i64(delta));
export const counterSet = (key, value) => host().counterSet(key, i64(value));
export const counterCompareAndSwap = (key, expected, next) =>
  host().counterCompareAndSwap(key, i64(expected), i64(next));

/** A shared round-robin cursor 0, 1, 2, … across instances, modulo `n` (a number). */
export function nextIndex(key, n) {
  if (n <= 0) return 0;
  const t = counterAdd(key, 1n) - 1n;
  const m = BigInt(n);
  return Number(((t % m) + m) % m);
}

export const kvGet = (key) => host().kvGet(key);
export function kvGetString(key) {
  const v = kvGet(key);
  if (v === undefined) return undefined;
  try {
    return new TextDecoder('utf-8', { fatal: true }).decode(v);
  } catch {
    return undefined;
  }
}
/** Store `value` under `key`, expiring after `ttlMs` (a number) or never. Throws `StateError`. */
export function kvSet(key, value, ttlMs) {
  const bytes = typeof value === 'string' ? new TextEncoder().encode(value) : value;
  host().kvSet(key, bytes, ttlMs === undefined ? undefined : BigInt(ttlMs));
}
export const kvDelete = (key) => host().kvDelete(key);
