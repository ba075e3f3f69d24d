// edgeward-world: scaler
// {{name}}: an Edgeward scaler. One replica per `target` requests per second
// (default 50), at least one.
import { ConfigError, exportScaler, scaleDecision } from 'edgeward-sdk';

export class Plugin {
  constructor(config) {
    config.allowOnly(['target']);
    this.target = config.numberOr('target', 50);
    if (!(this.target > 0)) throw new ConfigError(`config \`target\`: ${this.target} must be positive`);
  }

  evaluate(s) {
    const desired = Math.max(1, Math.ceil(s.requestRate / this.target));
    return scaleDecision(s.currentReplicas, desired, `${Math.round(s.requestRate)} rps / ${this.target} per replica`);
  }
}

export const { init, evaluate } = exportScaler(Plugin);
