// Helpers over the `upstream` a router receives. Inside a component it is the
// gateway's resource (`name()`, `tagged(tag)`, …); in tests a FakeUpstream.
import { mix64 } from './hash.js';

// Upstream names by endpoint-set fingerprint: a per-instance cache of host
// data (losing it costs one host call), as in the Rust SDK.
const names = new Map();

/** `"{prefix}/{upstream name}"`, the name fetched once per endpoint set. */
export function stateKey(upstream, prefix, candidates) {
  let fp = BigInt(candidates.length);
  for (const c of candidates) fp = mix64(fp ^ BigInt(c.key));
  let name = names.get(fp);
  if (name === undefined) {
    if (names.size >= 64) names.clear();
    name = upstream.name();
    names.set(fp, name);
  }
  return `${prefix}/${name}`;
}
