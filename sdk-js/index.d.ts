// TypeScript declarations for edgeward-sdk (the shapes of wit/types.wit as
// componentize-js passes them: u64/s64 are bigint, variants `{ tag, val }`).

export type IpAddress = { tag: 'ipv4'; val: [number, number, number, number] } | { tag: 'ipv6'; val: number[] };

export interface Candidate {
  id: number;
  key: bigint;
  weight: number;
  healthy: boolean;
  inFlight: number;
  latencyEwmaUs: number;
  zone: number;
}

export interface Request {
  method(): string;
  scheme(): string;
  authority(): string | undefined;
  path(): string;
  query(): string | undefined;
  header(name: string): string | undefined;
  headerAll(name: string): string[];
  cookie(name: string): string | undefined;
  clientAddr(): IpAddress;
  httpVersion(): 'http10' | 'http11' | 'http2' | 'http3';
  route(): string;
}

export interface Response {
  status(): number;
  header(name: string): string | undefined;
  headerAll(name: string): string[];
}

export interface Upstream {
  name(): string;
  address(id: number): string | undefined;
  zoneName(zone: number): string | undefined;
  localZone(): number;
  tags(id: number): string[];
  tagged(tag: string): number[];
}

export type HeaderEdit =
  | { tag: 'set'; val: { name: string; value: string } }
  | { tag: 'append'; val: { name: string; value: string } }
  | { tag: 'remove'; val: string };

export interface DirectResponse {
  status: number;
  headers: { name: string; value: string }[];
  body: Uint8Array;
}

export type Decision =
  | { tag: 'forward'; val: { endpoint: number; requestHeaders: HeaderEdit[]; responseHeaders: HeaderEdit[] } }
  | { tag: 'respond'; val: DirectResponse }
  | { tag: 'unavailable' };

export type Action = { tag: 'continue'; val: HeaderEdit[] } | { tag: 'respond'; val: DirectResponse };

export interface ScaleSnapshot {
  service: string;
  atMs: bigint;
  windowMs: bigint;
  currentReplicas: number;
  healthyReplicas: number;
  requestRate: number;
  errorRate: number;
  latencyP50Ms: number;
  latencyP90Ms: number;
  latencyP99Ms: number;
  inFlight: number;
  queueDepth: number;
  gatewayCpu: number;
  gatewayMemoryBytes: bigint;
  serviceCpu?: number;
  serviceMemory?: number;
}

export interface ScaleDecision {
  desiredReplicas: number;
  direction: 'up' | 'down' | 'hold';
  reason: string;
}

export class ConfigError extends Error {}
export class Config {
  constructor(entries?: Array<[string, string]> | Record<string, string>);
  get(key: string): string | undefined;
  getOr(key: string, fallback: string): string;
  numberOr(key: string, fallback: number): number;
  intOr(key: string, fallback: number): number;
  boolOr(key: string, fallback: boolean): boolean;
  durationMs(key: string, fallback?: number): number | undefined;
  allowOnly(known: string[]): void;
}

export interface RouterClass {
  new (config: Config): { choose(req: Request, upstream: Upstream, candidates: Candidate[]): Decision };
}
export interface FilterClass {
  new (config: Config): { onRequest(req: Request): Action; onResponse(req: Request, resp: Response): Action };
}
export interface ScalerClass {
  new (config: Config): { evaluate(snapshot: ScaleSnapshot): ScaleDecision };
}

export function exportRouter(cls: RouterClass): {
  init(config: Array<[string, string]>): void;
  choose(req: Request, target: Upstream, candidates: Candidate[]): Decision;
};
export function exportFilter(cls: FilterClass): {
  init(config: Array<[string, string]>): void;
  onRequest(req: Request): Action;
  onResponse(req: Request, resp: Response): Action;
};
export function exportScaler(cls: ScalerClass): {
  init(config: Array<[string, string]>): void;
  evaluate(snapshot: ScaleSnapshot): ScaleDecision;
};

export function stateKey(upstream: Upstream, prefix: string, candidates: Candidate[]): string;
export const HeaderEdit: {
  set(name: string, value: string): HeaderEdit;
  append(name: string, value: string): HeaderEdit;
  remove(name: string): HeaderEdit;
};
export function forward(candidate: Candidate | number, edits?: { requestHeaders?: HeaderEdit[]; responseHeaders?: HeaderEdit[] }): Decision;
export function forwardOrUnavailable(candidate: Candidate | undefined | null): Decision;
export const UNAVAILABLE: Decision;
export function directResponse(status: number, headers?: Array<[string, string]>, body?: string | Uint8Array): DirectResponse;
export function respond(response: DirectResponse): Decision & Action;
export function endpointOf(d: Decision): number | undefined;
export function proceed(edits?: HeaderEdit[]): Action;
export const PASS: Action;
export function scaleDecision(current: number, desired: number, reason: string): ScaleDecision;
export function healthy(candidates: Candidate[]): Candidate[];

export namespace hash {
  function fnv1a64(data: Uint8Array | string): bigint;
  function mix64(x: bigint): bigint;
  function text(s: string): bigint;
  function ip(addr: IpAddress | string): bigint;
  function bucket(key: bigint, buckets: number | bigint): number;
  function parseIp(s: string): IpAddress;
}
export namespace state {
  class StateError extends Error {}
  function counterGet(key: string): bigint;
  function counterAdd(key: string, delta: bigint | number): bigint;
  function counterSet(key: string, value: bigint | number): void;
  function counterCompareAndSwap(key: string, expected: bigint | number, next: bigint | number): boolean;
  function nextIndex(key: string, n: number): number;
  function kvGet(key: string): Uint8Array | undefined;
  function kvGetString(key: string): string | undefined;
  function kvSet(key: string, value: Uint8Array | string, ttlMs?: number): void;
  function kvDelete(key: string): boolean;
}
export namespace log {
  type Level = 'trace' | 'debug' | 'info' | 'warn' | 'error';
  function enabled(level: Level): boolean;
  function log(level: Level, message: string): void;
  function trace(m: string): void;
  function debug(m: string): void;
  function info(m: string): void;
  function warn(m: string): void;
  function error(m: string): void;
}
export namespace clock {
  function monotonicNow(): bigint;
  function wallNow(): bigint;
}
