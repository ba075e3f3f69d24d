// A canary router in JavaScript: the same logic as examples/canary-plugin (Rust).
//
// Endpoints tagged `canary` get every request with `X-Canary: 1` (none with
// `X-Canary: 0`) and otherwise a stable share of clients (10 % by default),
// chosen by a hash of the client address or of `client-header`. Round robin
// within each side over healthy endpoints (cursors in host state); a side
// with no healthy endpoint sends its requests to the other side.
import { ConfigError, UNAVAILABLE, exportRouter, forward, hash, state, stateKey } from 'edgeward-sdk';

/** Resolution of the stable percentage: basis points, as in the Rust example. */
const BUCKETS = 10_000;

export class Canary {
  constructor(config) {
    config.allowOnly(['tag', 'percent', 'header', 'client-header']);
    const percent = config.numberOr('percent', 10);
    if (!(percent >= 0 && percent <= 100)) throw new ConfigError(`config \`percent\`: ${percent} is outside 0..=100`);
    this.tag = config.getOr('tag', 'canary').trim();
    if (!this.tag) throw new ConfigError('config `tag`: must not be empty');
    this.share = Math.round(percent * 100);
    this.header = config.getOr('header', 'x-canary').trim().toLowerCase();
    this.clientHeader = config.get('client-header')?.trim().toLowerCase();
  }

  wantsCanary(req) {
    const v = req.header(this.header)?.trim();
    if (v === '1' || v === '0') return v === '1';
    const value = this.clientHeader ? req.header(this.clientHeader) : undefined;
    const key = value !== undefined ? hash.text(value.trim()) : hash.ip(req.clientAddr());
    return hash.bucket(key, BUCKETS) < this.share;
  }

  choose(req, upstream, candidates) {
    const canaryIds = new Set(upstream.tagged(this.tag));
    const wanted = this.wantsCanary(req);
    for (const canary of [wanted, !wanted]) {
      const side = candidates.filter((c) => c.healthy && canaryIds.has(c.id) === canary);
      if (side.length > 0) {
        const key = stateKey(upstream, canary ? 'canary/canary' : 'canary/stable', candidates);
        return forward(side[state.nextIndex(key, side.length)]);
      }
    }
    return UNAVAILABLE;
  }
}

export const { init, choose } = exportRouter(Canary);
