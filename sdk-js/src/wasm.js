// The component side: the gateway's imports become the SDK's host. The build
// (`build.mjs`) imports this module first; under node it is never loaded.
import * as clock from 'edgeward:plugin/clock@0.1.0';
import * as log from 'edgeward:plugin/log@0.1.0';
import * as state from 'edgeward:plugin/state@0.1.0';
import { install } from './host.js';
import { StateError } from './state.js';

install({
  counterGet: state.counterGet,
  counterAdd: state.counterAdd,
  counterSet: state.counterSet,
  counterCompareAndSwap: state.counterCompareAndSwap,
  kvGet: state.kvGet,
  kvDelete: state.kvDelete,
  kvSet(key, value, ttlMs) {
    try {
      state.kvSet(key, value, ttlMs);
    } catch (e) {
      throw new StateError(String(e && e.payload !== undefined ? e.payload : e));
    }
  },
  monotonicNow: clock.monotonicNow,
  wallNow: clock.wallNow,
  logEnabled: log.enabled,
  log: log.log,
});
