// Decisions, actions and header edits, shaped exactly as the component
// boundary wants them (`{ tag, val }` variants), so nothing is converted on
// the way out.

/** Header edits: `set` replaces, `append` adds (for `set-cookie`), `remove` deletes. */
export const HeaderEdit = {
  set: (name, value) => ({ tag: 'set', val: { name: name.toLowerCase(), value } }),
  append: (name, value) => ({ tag: 'append', val: { name: name.toLowerCase(), value } }),
  remove: (name) => ({ tag: 'remove', val: name.toLowerCase() }),
};

/** Forward to `candidate` (or an id), with optional header edits. */
export function forward(candidate, { requestHeaders = [], responseHeaders = [] } = {}) {
  const endpoint = typeof candidate === 'number' ? candidate : candidate.id;
  return { tag: 'forward', val: { endpoint, requestHeaders, responseHeaders } };
}

export const UNAVAILABLE = Object.freeze({ tag: 'unavailable' });

export function forwardOrUnavailable(candidate) {
  return candidate === undefined || candidate === null ? UNAVAILABLE : forward(candidate);
}

/** A direct response: status 200..=599, headers as `[name, value]` pairs, body text or bytes (≤ 64 KiB). */
export function directResponse(status, headers = [], body = new Uint8Array()) {
  return {
    status,
    headers: headers.map(([name, value]) => ({ name: name.toLowerCase(), value })),
    body: typeof body === 'string' ? new TextEncoder().encode(body) : body,
  };
}

export const respond = (response) => ({ tag: 'respond', val: response });

/** The endpoint a decision forwards to, or undefined. */
export const endpointOf = (d) => (d.tag === 'forward' ? d.val.endpoint : undefined);

/** A filter's "carry on" after `edits` (none is the cheap no-op). */
export const proceed = (edits = []) => ({ tag: 'continue', val: edits });
export const PASS = Object.freeze({ tag: 'continue', val: [] });

/** A scaler's answer, with the direction worked out from `current`. */
export function scaleDecision(current, desired, reason) {
  const d = Math.max(0, Math.round(desired));
  return { desiredReplicas: d, direction: d > current ? 'up' : d < current ? 'down' : 'hold', reason };
}

export const healthy = (candidates) => candidates.filter((c) => c.healthy);
