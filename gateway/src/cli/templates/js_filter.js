// edgeward-world: filter
// {{name}}: an Edgeward filter. Answers 403 for paths under `deny` (default
// `/admin`) and tags every response with `x-filtered-by`.
import { ConfigError, HeaderEdit, PASS, directResponse, exportFilter, proceed, respond } from 'edgeward-sdk';

export class Plugin {
  constructor(config) {
    config.allowOnly(['deny']);
    this.deny = config.getOr('deny', '/admin');
    if (!this.deny.startsWith('/')) throw new ConfigError(`config \`deny\`: \`${this.deny}\` must start with /`);
  }

  onRequest(req) {
    if (req.path().startsWith(this.deny)) return respond(directResponse(403, [['content-type', 'text/plain']], 'forbidden\n'));
    return PASS;
  }

  onResponse(_req, _resp) {
    return proceed([HeaderEdit.set('x-filtered-by', '{{name}}')]);
  }
}

export const { init, onRequest, onResponse } = exportFilter(Plugin);
