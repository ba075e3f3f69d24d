// edgeward-world: router
// {{name}}: an Edgeward router. Round robin over the healthy endpoints, with
// the cursor in host state so every instance shares it.
import { UNAVAILABLE, exportRouter, forward, healthy, state, stateKey } from 'edgeward-sdk';

export class Plugin {
  constructor(config) {
    config.allowOnly([]);
  }

  choose(req, upstream, candidates) {
    const up = healthy(candidates);
    if (up.length === 0) return UNAVAILABLE;
    return forward(up[state.nextIndex(stateKey(upstream, 'rr', candidates), up.length)]);
  }
}

export const { init, choose } = exportRouter(Plugin);
