import assert from 'node:assert/strict';
import { test } from 'node:test';

import { endpointOf } from 'edgeward-sdk';
import { FakeHost, FakeRequest, FakeUpstream } from 'edgeward-sdk/testing';

import { Plugin } from './app.js';

test('rotates over healthy endpoints', () => {
  const host = new FakeHost();
  const p = host.router(Plugin);
  const up = new FakeUpstream('app').withEndpoint('10.0.0.1:80').withEndpoint('10.0.0.2:80').withEndpoint('10.0.0.3:80');
  up.setHealthy(1, false);
  assert.deepEqual([0, 1, 2, 3].map(() => endpointOf(host.choose(p, FakeRequest.get('/'), up))), [0, 2, 0, 2]);
  assert.throws(() => host.router(Plugin, { typo: '1' }), /unknown key/);
});
