// Where state, log and clock calls go: the gateway inside a component (set by
// `wasm.js`, which the build puts first), or a `FakeHost` in tests.
let current = null;

export function host() {
  if (current === null) {
    throw new Error('no host: inside a component the gateway is the host; in tests, call through FakeHost (edgeward-sdk/testing)');
  }
  return current;
}

export function install(h) {
  const previous = current;
  current = h;
  return previous;
}
