// Run plugin logic natively under `node --test`, as the Rust SDK's
// `testing::FakeHost`: a fake host plays the gateway (state, clock, logs, and
// the checks the gateway makes on answers); no component build needed.
import { Config } from './config.js';
import { fnv1a64, parseIp } from './hash.js';
import { install } from './host.js';
import { LEVELS } from './log.js';
import { MAX_KEY_LEN, MAX_VALUE_LEN, StateError } from './state.js';

const utf8 = new TextEncoder();

export class FakeHost {
  constructor({ maxEntries = 10_000, logLevel = 'debug' } = {}) {
    this.counters = new Map();
    this.kv = new Map();
    this.maxEntries = maxEntries;
    this.logLevel = logLevel;
    this.logs = [];
    this.nowNs = 1_000_000_000n;
    this.wallNs = 1_700_000_000_000_000_000n;
  }

  // --- the host interfaces ---
  #key(key) {
    if (utf8.encode(key).length > MAX_KEY_LEN) throw new StateError('too-large');
  }
  #room(key) {
    if (!this.counters.has(key) && !this.kv.has(key) && this.counters.size + this.kv.size >= this.maxEntries) {
      throw new StateError('full');
    }
  }
  counterGet(key) {
    return this.counters.get(key) ?? 0n;
  }
  counterAdd(key, delta) {
    this.#key(key);
    this.#room(key);
    const v = BigInt.asIntN(64, this.counterGet(key) + BigInt(delta));
    this.counters.set(key, v);
    return v;
  }
  counterSet(key, value) {
    this.#key(key);
    this.#room(key);
    this.counters.set(key, BigInt.asIntN(64, BigInt(value)));
  }
  counterCompareAndSwap(key, expected, next) {
    if (this.counterGet(key) !== BigInt(expected)) return false;
    this.counterSet(key, next);
    return true;
  }
  #live(key) {
    const e = this.kv.get(key);
    if (e === undefined) return undefined;
    if (e.expires !== undefined && this.nowNs >= e.expires) {
      this.kv.delete(key);
      return undefined;
    }
    return e.value;
  }
  kvGet(key) {
    return this.#live(key);
  }
  kvSet(key, value, ttlMs) {
    this.#key(key);
    if (value.length > MAX_VALUE_LEN) throw new StateError('too-large');
    this.#room(key);
    this.kv.set(key, { value: Uint8Array.from(value), expires: ttlMs === undefined ? undefined : this.nowNs + BigInt(ttlMs) * 1_000_000n });
  }
  kvDelete(key) {
    const present = this.#live(key) !== undefined;
    this.kv.delete(key);
    return present;
  }
  monotonicNow() {
    return this.nowNs;
  }
  wallNow() {
    return this.wallNs;
  }
  logEnabled(level) {
    return LEVELS.indexOf(level) >= LEVELS.indexOf(this.logLevel);
  }
  log(level, message) {
    if (this.logEnabled(level)) this.logs.push([level, message.slice(0, 1024)]);
  }

  // --- driving a plugin ---
  /** Call `f` with this host installed. */
  run(f) {
    const previous = install(this);
    try {
      return f();
    } finally {
      install(previous);
    }
  }
  /** `new Cls(config)` as `init` would; `config` is an object or `[key, value]` pairs. */
  router(Cls, config = {}) {
    return this.run(() => new Cls(new Config(Array.isArray(config) ? config : Object.entries(config))));
  }
  filter(Cls, config = {}) {
    return this.router(Cls, config);
  }
  scaler(Cls, config = {}) {
    return this.router(Cls, config);
  }
  /** One `choose` with the candidates the gateway would pass; checks the answer as the gateway does. */
  choose(router, req, upstream) {
    const candidates = upstream.candidates();
    const d = this.run(() => router.choose(req, upstream, candidates));
    if (d?.tag === 'forward') {
      if (!candidates.some((c) => c.id === d.val.endpoint)) throw new Error(`choose forwarded to id ${d.val.endpoint}, not among the candidates`);
    } else if (d?.tag === 'respond') checkResponse(d.val);
    else if (d?.tag !== 'unavailable') throw new Error(`choose returned ${JSON.stringify(d)}, not a decision`);
    return d;
  }
  onRequest(filter, req) {
    return checkAction(this.run(() => filter.onRequest(req)));
  }
  onResponse(filter, req, resp) {
    return checkAction(this.run(() => filter.onResponse(req, resp)));
  }
  evaluate(scaler, snapshot) {
    return this.run(() => scaler.evaluate(snapshot));
  }
  /** Move both clocks forward (TTL entries expire). */
  advance(ms) {
    const ns = BigInt(Math.round(ms * 1e6));
    this.nowNs += ns;
    this.wallNs += ns;
  }
}

function checkResponse(r) {
  if (!(r.status >= 200 && r.status <= 599)) throw new Error(`direct response status ${r.status} is outside 200..=599`);
  if (r.body.length > 64 << 10) throw new Error(`direct response body of ${r.body.length} bytes is over 64 KiB`);
}

function checkAction(a) {
  if (a?.tag === 'respond') checkResponse(a.val);
  else if (a?.tag !== 'continue') throw new Error(`filter returned ${JSON.stringify(a)}, not an action`);
  return a;
}

/** A request as a plugin sees it; builders chain. */
export class FakeRequest {
  constructor(method = 'GET', target = '/') {
    this._method = method;
    this._headers = [];
    this._client = parseIp('192.0.2.1');
    this._route = 'default';
    this.withTarget(target);
  }
  static get(target = '/') {
    return new FakeRequest('GET', target);
  }
  withTarget(target) {
    const q = target.indexOf('?');
    this._path = (q < 0 ? target : target.slice(0, q)) || '/';
    this._query = q < 0 ? undefined : target.slice(q + 1);
    return this;
  }
  withMethod(m) {
    this._method = m;
    return this;
  }
  withHeader(name, value) {
    this._headers.push([name.toLowerCase(), value]);
    return this;
  }
  withCookie(name, value) {
    return this.withHeader('cookie', `${name}=${value}`);
  }
  /** `'10.0.0.1'`, `'::1'`, or an `IpAddress`. */
  withClient(addr) {
    this._client = typeof addr === 'string' ? parseIp(addr) : addr;
    return this;
  }
  withRoute(r) {
    this._route = r;
    return this;
  }
  method() { return this._method; }
  scheme() { return 'http'; }
  authority() { return 'example.test'; }
  path() { return this._path; }
  query() { return this._query; }
  clientAddr() { return this._client; }
  httpVersion() { return 'http11'; }
  route() { return this._route; }
  headerAll(name) {
    const n = name.toLowerCase();
    return this._headers.filter(([k]) => k === n).map(([, v]) => v);
  }
  header(name) {
    return this.headerAll(name)[0];
  }
  cookie(name) {
    for (const line of this.headerAll('cookie')) {
      for (const pair of line.split(';')) {
        const i = pair.indexOf('=');
        if (i > 0 && pair.slice(0, i).trim() === name) return pair.slice(i + 1).trim();
      }
    }
    return undefined;
  }
}

export class FakeResponse {
  constructor(status = 200) {
    this._status = status;
    this._headers = [];
  }
  withHeader(name, value) {
    this._headers.push([name.toLowerCase(), value]);
    return this;
  }
  status() { return this._status; }
  headerAll(name) {
    return this._headers.filter(([k]) => k === name.toLowerCase()).map(([, v]) => v);
  }
  header(name) {
    return this.headerAll(name)[0];
  }
}

export class FakeEndpoint {
  constructor(address, { weight = 1, healthy = true, inFlight = 0, latencyEwmaUs = 0, zone, tags = [] } = {}) {
    Object.assign(this, { address, weight, healthy, inFlight, latencyEwmaUs, zone, tags: [...tags] });
  }
  tag(t) {
    this.tags.push(t);
    return this;
  }
}

/** An upstream as a router sees it: ids are insertion order, keys FNV-1a 64 of the address. */
export class FakeUpstream {
  constructor(name) {
    this._name = name;
    this.endpoints = [];
    this.localZoneName = undefined;
  }
  withEndpoint(address) {
    return this.with(new FakeEndpoint(address));
  }
  with(endpoint) {
    this.endpoints.push(endpoint);
    return this;
  }
  setHealthy(id, healthy) {
    this.endpoints[id].healthy = healthy;
  }
  #zones() {
    const zones = [];
    for (const z of [this.localZoneName, ...this.endpoints.map((e) => e.zone)]) {
      if (z !== undefined && !zones.includes(z)) zones.push(z);
    }
    return zones;
  }
  candidates() {
    const zones = this.#zones();
    return this.endpoints.map((e, id) => ({
      id,
      key: fnv1a64(e.address),
      weight: e.weight,
      healthy: e.healthy,
      inFlight: e.inFlight,
      latencyEwmaUs: e.latencyEwmaUs,
      zone: e.zone === undefined ? 0 : zones.indexOf(e.zone) + 1,
    }));
  }
  name() { return this._name; }
  address(id) { return this.endpoints[id]?.address; }
  zoneName(zone) { return this.#zones()[zone - 1]; }
  localZone() { return this.localZoneName === undefined ? 0 : this.#zones().indexOf(this.localZoneName) + 1; }
  tags(id) { return [...(this.endpoints[id]?.tags ?? [])]; }
  tagged(tag) {
    return this.endpoints.flatMap((e, i) => (e.tags.includes(tag) ? [i] : []));
  }
}
