// Stable hashing, bit for bit the Rust SDK's (`edgeward_sdk::hash`): the same
// input gives the same number on every node, build and SDK language. Values
// are unsigned 64-bit BigInts; `Candidate.key` is `fnv1a64` of the address.

const MASK = (1n << 64n) - 1n;
const FNV_OFFSET = 0xcbf29ce484222325n;
const FNV_PRIME = 0x100000001b3n;
const utf8 = new TextEncoder();

/** FNV-1a 64 of bytes (a Uint8Array, or a string taken as UTF-8). */
export function fnv1a64(data) {
  const bytes = typeof data === 'string' ? utf8.encode(data) : data;
  let h = FNV_OFFSET;
  for (const b of bytes) h = ((h ^ BigInt(b)) * FNV_PRIME) & MASK;
  return h;
}

/** The SplitMix64 finalizer: spreads FNV's weak high bits on short inputs. */
export function mix64(x) {
  x = (BigInt.asUintN(64, x) + 0x9e3779b97f4a7c15n) & MASK;
  x = ((x ^ (x >> 30n)) * 0xbf58476d1ce4e5b9n) & MASK;
  x = ((x ^ (x >> 27n)) * 0x94d049bb133111ebn) & MASK;
  return x ^ (x >> 31n);
}

/** A stable key for text (a header value, a user id). */
export function text(s) {
  return mix64(fnv1a64(s));
}

/**
 * A stable key for a client address: an `IpAddress` as `Request.clientAddr()`
 * returns it (`{ tag: 'ipv4', val: [a,b,c,d] }` or `{ tag: 'ipv6', val: [8 × u16] }`,
 * the component model's shape) or its text.
 * IPv4-mapped IPv6 hashes as IPv4.
 */
export function ip(addr) {
  const a = typeof addr === 'string' ? parseIp(addr) : addr;
  let bytes;
  if (a.tag === 'ipv4') bytes = Uint8Array.from(a.val);
  else {
    const s = a.val;
    const mapped = s.slice(0, 5).every((x) => x === 0) && s[5] === 0xffff;
    bytes = mapped
      ? Uint8Array.of(s[6] >> 8, s[6] & 255, s[7] >> 8, s[7] & 255)
      : Uint8Array.from(s.flatMap((x) => [x >> 8, x & 255]));
  }
  return mix64(fnv1a64(bytes));
}

/** Map `key` to one of `buckets` (a number or BigInt), uniformly and stably. */
export function bucket(key, buckets) {
  const n = BigInt(buckets);
  if (n <= 0n) throw new RangeError('bucket count must be positive');
  return Number((mix64(BigInt(key)) * n) >> 64n);
}

/** `'10.0.0.1'` or `'::ffff:10.0.0.1'` as an `IpAddress`. */
export function parseIp(s) {
  if (!s.includes(':')) {
    const p = s.split('.').map(Number);
    if (p.length !== 4 || p.some((x) => !(x >= 0 && x <= 255))) throw new TypeError(`not an IP address: ${s}`);
    return { tag: 'ipv4', val: p };
  }
  let tail = [];
  let t = s;
  const dot = t.lastIndexOf(':');
  if (t.slice(dot + 1).includes('.')) {
    const v4 = parseIp(t.slice(dot + 1)).val;
    tail = [(v4[0] << 8) | v4[1], (v4[2] << 8) | v4[3]];
    t = t.slice(0, dot + 1) + '0:0';
  }
  const [head, rest] = t.includes('::') ? t.split('::') : [t, null];
  const hex = (part) => (part ? part.split(':').map((x) => parseInt(x, 16)) : []);
  let groups = hex(head);
  if (rest !== null) {
    const r = hex(rest);
    groups = [...groups, ...new Array(8 - groups.length - r.length).fill(0), ...r];
  }
  if (tail.length) groups = [...groups.slice(0, 6), ...tail];
  if (groups.length !== 8 || groups.some((x) => !(x >= 0 && x <= 0xffff))) throw new TypeError(`not an IP address: ${s}`);
  return { tag: 'ipv6', val: groups };
}
