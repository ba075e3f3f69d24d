import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { test } from 'node:test';

import { Config, ConfigError, exportRouter, forward, hash, log, state, stateKey } from '../src/index.js';
import { FakeHost, FakeRequest, FakeUpstream } from '../src/testing.js';

test('hashes match the known answers shared with the Rust SDK', () => {
  const file = readFileSync(new URL('../../sdk/tests/hash-vectors.tsv', import.meta.url), 'utf8');
  let n = 0;
  for (const line of file.split('\n')) {
    if (!line || line.startsWith('#')) continue;
    const [f, input, want] = line.split('\t');
    let got;
    if (f === 'fnv1a64') got = hash.fnv1a64(input);
    else if (f === 'text') got = hash.text(input);
    else if (f === 'ip') got = hash.ip(input);
    else if (f === 'bucket') {
      const [k, b] = input.split(' ');
      got = BigInt(hash.bucket(BigInt(k), BigInt(b)));
    } else assert.fail(`unknown function ${f}`);
    assert.equal(BigInt(got), BigInt(want), line);
    n++;
  }
  assert.ok(n >= 20, `${n} vectors`);
});

test('config getters name the key and suggest the closest', () => {
  const c = new Config([['percent', 'ten'], ['ttl', '90s'], ['sticky', 'yes']]);
  assert.throws(() => c.numberOr('percent', 1), (e) => e instanceof ConfigError && /`percent`/.test(e.message) && /`ten`/.test(e.message));
  assert.equal(c.durationMs('ttl'), 90_000);
  assert.equal(c.boolOr('sticky', false), true);
  assert.equal(c.intOr('missing', 7), 7);
  assert.throws(() => new Config([['cokie', 'x']]).allowOnly(['cookie', 'max-age']), /did you mean `cookie`/);
  assert.throws(() => new Config([['d', '5 parsecs']]).durationMs('d'), /ms, s, m, h or d/);
});

test('state is shared, atomic per call, and bounded like the host', () => {
  const host = new FakeHost({ maxEntries: 2 });
  host.run(() => {
    assert.deepEqual([0, 1, 2, 3].map(() => state.nextIndex('rr', 3)), [0, 1, 2, 0]);
    assert.equal(state.counterCompareAndSwap('c', 0n, 5n), true);
    assert.equal(state.counterGet('c'), 5n);
    assert.throws(() => state.kvSet('third', 'x'), state.StateError);
  });
  const h = new FakeHost();
  h.run(() => {
    state.kvSet('k', 'v', 1000);
    assert.equal(state.kvGetString('k'), 'v');
    h.advance(1000);
    assert.equal(state.kvGet('k'), undefined);
    assert.throws(() => state.kvSet('x'.repeat(257), 'v'), state.StateError);
    assert.equal(state.counterAdd('w', (1n << 63n) - 1n), (1n << 63n) - 1n);
    assert.equal(state.counterAdd('w', 1n), -(1n << 63n));
  });
});

test('exports turn a class into init and choose; init errors are strings', () => {
  class Rr {
    constructor(config) {
      config.allowOnly([]);
    }
    choose(_req, up, candidates) {
      log.info('choosing');
      return forward(candidates[state.nextIndex(stateKey(up, 'rr', candidates), candidates.length)]);
    }
  }
  const host = new FakeHost();
  const { init, choose } = exportRouter(Rr);
  assert.throws(() => host.run(() => init([['typo', '1']])), (e) => typeof e === 'string' && /unknown key `typo`/.test(e));
  host.run(() => init([]));
  const up = new FakeUpstream('app').withEndpoint('10.0.0.1:80').withEndpoint('10.0.0.2:80');
  const picks = [0, 1, 2].map(() => host.run(() => choose(FakeRequest.get('/'), up, up.candidates())).val.endpoint);
  assert.deepEqual(picks, [0, 1, 0]);
  assert.equal(host.counters.get('rr/app'), 3n);
  assert.deepEqual(host.logs[0], ['info', 'choosing']);
});

test('a thrown error is logged through the host before it traps', () => {
  class Broken {
    choose() {
      throw new TypeError('no endpoints today');
    }
  }
  const host = new FakeHost();
  const { init, choose } = exportRouter(Broken);
  host.run(() => init([]));
  assert.throws(() => host.run(() => choose(FakeRequest.get('/'), new FakeUpstream('a'), [])), TypeError);
  assert.match(host.logs[0][1], /choose threw TypeError: no endpoints today/);
});

test('IPv4-mapped IPv6 clients hash like IPv4 ones', () => {
  assert.equal(hash.ip('::ffff:10.1.2.3'), hash.ip('10.1.2.3'));
  assert.equal(hash.ip(new FakeRequest().withClient('10.1.2.3').clientAddr()), hash.ip('10.1.2.3'));
  assert.notEqual(hash.ip('::1'), hash.ip('10.1.2.3'));
});
