// `exportRouter`/`exportFilter`/`exportScaler` turn a plugin class into the
// component's exports: `export const { init, choose } = exportRouter(MyRouter);`
// The constructor is `init` (throw `ConfigError` for a bad config: it becomes
// the plugin's load error); the object lives as long as the instance.
import { Config } from './config.js';
import { host } from './host.js';

function guarded(what, f) {
  // An exception would trap with its message on stderr, which the host does
  // not keep: send it through the host log first, then trap.
  return (...args) => {
    try {
      return f(...args);
    } catch (e) {
      const where = e && e.stack ? ` ${String(e.stack).split('\n').slice(0, 3).join(' | ')}` : '';
      try {
        host().log('error', `${what} threw ${e && e.name ? e.name : typeof e}: ${e && e.message ? e.message : e}${where}`);
      } catch {
        // no host to tell: trap anyway
      }
      throw e;
    }
  };
}

function initOf(Cls, holder) {
  return (pairs) => {
    try {
      holder.plugin = new Cls(new Config(pairs));
    } catch (e) {
      // `result<_, string>`: the thrown value is the error string.
      throw String(e && e.message ? e.message : e);
    }
  };
}

export function exportRouter(Cls) {
  const holder = {};
  return {
    init: initOf(Cls, holder),
    choose: guarded('choose', (req, target, candidates) => holder.plugin.choose(req, target, candidates)),
  };
}

export function exportFilter(Cls) {
  const holder = {};
  return {
    init: initOf(Cls, holder),
    onRequest: guarded('on-request', (req) => holder.plugin.onRequest(req)),
    onResponse: guarded('on-response', (req, resp) => holder.plugin.onResponse(req, resp)),
  };
}

export function exportScaler(Cls) {
  const holder = {};
  return {
    init: initOf(Cls, holder),
    evaluate: guarded('evaluate', (snapshot) => holder.plugin.evaluate(snapshot)),
  };
}
