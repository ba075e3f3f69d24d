import assert from 'node:assert/strict';
import { test } from 'node:test';

import { FakeHost } from 'edgeward-sdk/testing';

import { Plugin } from './app.js';

test('one replica per target rps', () => {
  const host = new FakeHost();
  const p = host.scaler(Plugin, { target: '100' });
  const d = host.evaluate(p, { requestRate: 250, currentReplicas: 2 });
  assert.deepEqual([d.desiredReplicas, d.direction], [3, 'up']);
  assert.throws(() => host.scaler(Plugin, { target: '0' }), /must be positive/);
});
