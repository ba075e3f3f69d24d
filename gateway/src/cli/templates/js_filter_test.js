import assert from 'node:assert/strict';
import { test } from 'node:test';

import { PASS } from 'edgeward-sdk';
import { FakeHost, FakeRequest } from 'edgeward-sdk/testing';

import { Plugin } from './app.js';

test('denies the configured prefix only', () => {
  const host = new FakeHost();
  const p = host.filter(Plugin, { deny: '/private' });
  const a = host.onRequest(p, FakeRequest.get('/private/x'));
  assert.equal(a.tag, 'respond');
  assert.equal(a.val.status, 403);
  assert.equal(host.onRequest(p, FakeRequest.get('/public')), PASS);
  assert.throws(() => host.filter(Plugin, { deny: 'nope' }), /must start with/);
});
