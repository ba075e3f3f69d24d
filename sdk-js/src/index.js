// Write Edgeward gateway plugins (routers, filters, scalers) in JavaScript.
// Mirrors the Rust SDK (`edgeward-sdk`), its stable hashes bit for bit.
// Build: `node build.mjs app.js --world router -o router.wasm` (componentize-js,
// pinned); test natively with `edgeward-sdk/testing` under `node --test`.
export * as hash from './hash.js';
export * as state from './state.js';
export * as log from './log.js';
export * as clock from './clock.js';
export { Config, ConfigError } from './config.js';
export { exportRouter, exportFilter, exportScaler } from './plugin.js';
export { stateKey } from './request.js';
export {
  HeaderEdit,
  PASS,
  UNAVAILABLE,
  directResponse,
  endpointOf,
  forward,
  forwardOrUnavailable,
  healthy,
  proceed,
  respond,
  scaleDecision,
} from './types.js';
