// Native tests: FakeHost plays the gateway; no component build needed.
import assert from 'node:assert/strict';
import { test } from 'node:test';

import { UNAVAILABLE, endpointOf } from 'edgeward-sdk';
import { FakeEndpoint, FakeHost, FakeRequest, FakeUpstream } from 'edgeward-sdk/testing';

import { Canary } from './app.js';

/** Two stable endpoints (ids 0, 1) and one canary (id 2). */
const upstream = () =>
  new FakeUpstream('product').withEndpoint('10.0.0.1:80').withEndpoint('10.0.0.2:80').with(new FakeEndpoint('10.0.0.9:80').tag('canary'));

const client = (i) => FakeRequest.get('/').withClient({ tag: 'ipv4', val: [10, 100, (i >> 8) & 255, i & 255] });
const toCanary = (host, r, req, up) => endpointOf(host.choose(r, req, up)) === 2;

test('the header forces either side', () => {
  const host = new FakeHost();
  const r = host.router(Canary, { percent: '50' });
  const up = upstream();
  for (let i = 0; i < 50; i++) {
    assert.ok(toCanary(host, r, client(i).withHeader('X-Canary', '1'), up));
    assert.ok(!toCanary(host, r, client(i).withHeader('x-canary', '0'), up));
  }
});

test('a stable ten percent of clients go to canary', () => {
  const host = new FakeHost();
  const r = host.router(Canary);
  const up = upstream();
  const canary = [...Array(5000).keys()].filter((i) => toCanary(host, r, client(i), up));
  assert.ok(canary.length >= 400 && canary.length <= 600, `${canary.length}`);
  const other = host.router(Canary);
  assert.ok(canary.slice(0, 100).every((i) => toCanary(host, other, client(i), up)));
});

test('stable traffic is round robin over the stable endpoints', () => {
  const host = new FakeHost();
  const r = host.router(Canary, { percent: '0' });
  const up = upstream();
  assert.deepEqual([0, 1, 2, 3].map((i) => endpointOf(host.choose(r, client(i), up))), [0, 1, 0, 1]);
});

test('falls back to the other side when one is down', () => {
  const host = new FakeHost();
  const r = host.router(Canary);
  const up = upstream();
  up.setHealthy(2, false);
  assert.notEqual(endpointOf(host.choose(r, client(1).withHeader('x-canary', '1'), up)), 2);
  up.setHealthy(2, true);
  up.setHealthy(0, false);
  up.setHealthy(1, false);
  assert.equal(endpointOf(host.choose(r, client(1).withHeader('x-canary', '0'), up)), 2);
  up.setHealthy(2, false);
  assert.equal(host.choose(r, client(1), up), UNAVAILABLE);
});

test('config errors name the key', () => {
  for (const [bad, key] of [[['percent', '150'], 'percent'], [['percent', 'lots'], 'percent'], [['tag', ' '], 'tag'], [['precent', '5'], 'precent']]) {
    assert.throws(() => new FakeHost().router(Canary, [bad]), new RegExp(key));
  }
});
