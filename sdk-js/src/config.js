// The plugin's `config:` map with typed getters whose errors name the key and
// the bad value (they become the plugin's load error at startup).

export class ConfigError extends Error {}

export class Config {
  /** @param {Array<[string, string]>} entries the pairs `init` receives, in file order */
  constructor(entries = []) {
    this.entries = Array.isArray(entries) ? entries.map(([k, v]) => [String(k), String(v)]) : Object.entries(entries);
  }

  get(key) {
    const e = this.entries.find(([k]) => k === key);
    return e === undefined ? undefined : e[1];
  }

  getOr(key, fallback) {
    const v = this.get(key);
    return v === undefined ? fallback : v;
  }

  numberOr(key, fallback) {
    const v = this.get(key);
    if (v === undefined) return fallback;
    const n = v.trim() === '' ? NaN : Number(v.trim());
    if (!Number.isFinite(n)) throw new ConfigError(`config \`${key}\`: invalid value \`${v}\`: expected a number`);
    return n;
  }

  intOr(key, fallback) {
    const n = this.numberOr(key, fallback);
    if (!Number.isInteger(n)) throw new ConfigError(`config \`${key}\`: invalid value \`${this.get(key)}\`: expected an integer`);
    return n;
  }

  boolOr(key, fallback) {
    const v = this.get(key);
    if (v === undefined) return fallback;
    const t = v.trim().toLowerCase();
    if (['true', 'yes', 'on', '1'].includes(t)) return true;
    if (['false', 'no', 'off', '0'].includes(t)) return false;
    throw new ConfigError(`config \`${key}\`: invalid value \`${t}\`: expected true or false`);
  }

  /** `250ms`, `30s`, `5m`, `2h`, `1d` (a bare number is seconds), in milliseconds. */
  durationMs(key, fallback) {
    const v = this.get(key);
    if (v === undefined) return fallback;
    const m = /^\s*([0-9.]+)\s*(ms|s|m|h|d)?\s*$/.exec(v);
    if (!m || !Number.isFinite(Number(m[1]))) {
      throw new ConfigError(`config \`${key}\`: invalid value \`${v}\`: expected a number followed by ms, s, m, h or d`);
    }
    const scale = { ms: 1, s: 1000, m: 60_000, h: 3_600_000, d: 86_400_000 }[m[2] ?? 's'];
    return Number(m[1]) * scale;
  }

  /** Reject any key not in `known`, suggesting the closest. */
  allowOnly(known) {
    for (const [k] of this.entries) {
      if (!known.includes(k)) {
        const best = [...known].sort((a, b) => distance(k, a) - distance(k, b))[0];
        const hint = best !== undefined && distance(k, best) <= 2 ? `; did you mean \`${best}\`?` : '';
        throw new ConfigError(`config: unknown key \`${k}\` (known: ${known.length ? known.join(', ') : 'none'})${hint}`);
      }
    }
  }
}

function distance(a, b) {
  const row = Array.from({ length: b.length + 1 }, (_, i) => i);
  for (let i = 0; i < a.length; i++) {
    let prev = row[0];
    row[0] = i + 1;
    for (let j = 0; j < b.length; j++) {
      const cur = row[j + 1];
      row[j + 1] = Math.min(prev + (a[i] !== b[j] ? 1 : 0), row[j] + 1, cur + 1);
      prev = cur;
    }
  }
  return row[b.length];
}
