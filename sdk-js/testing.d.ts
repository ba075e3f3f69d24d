import type { Action, Candidate, Decision, IpAddress, Request, Response, ScaleDecision, ScaleSnapshot, Upstream } from './index.js';

export class FakeHost {
  constructor(opts?: { maxEntries?: number; logLevel?: string });
  counters: Map<string, bigint>;
  logs: Array<[string, string]>;
  run<T>(f: () => T): T;
  router<T>(cls: new (config: any) => T, config?: Record<string, string> | Array<[string, string]>): T;
  filter<T>(cls: new (config: any) => T, config?: Record<string, string> | Array<[string, string]>): T;
  scaler<T>(cls: new (config: any) => T, config?: Record<string, string> | Array<[string, string]>): T;
  choose(router: any, req: FakeRequest, upstream: FakeUpstream): Decision;
  onRequest(filter: any, req: FakeRequest): Action;
  onResponse(filter: any, req: FakeRequest, resp: FakeResponse): Action;
  evaluate(scaler: any, snapshot: Partial<ScaleSnapshot>): ScaleDecision;
  advance(ms: number): void;
}
export class FakeRequest implements Request {
  constructor(method?: string, target?: string);
  static get(target?: string): FakeRequest;
  withTarget(t: string): this;
  withMethod(m: string): this;
  withHeader(name: string, value: string): this;
  withCookie(name: string, value: string): this;
  withClient(addr: string | IpAddress): this;
  withRoute(r: string): this;
  method(): string; scheme(): string; authority(): string | undefined; path(): string; query(): string | undefined;
  header(name: string): string | undefined; headerAll(name: string): string[]; cookie(name: string): string | undefined;
  clientAddr(): IpAddress; httpVersion(): 'http11'; route(): string;
}
export class FakeResponse implements Response {
  constructor(status?: number);
  withHeader(name: string, value: string): this;
  status(): number; header(name: string): string | undefined; headerAll(name: string): string[];
}
export class FakeEndpoint {
  constructor(address: string, opts?: { weight?: number; healthy?: boolean; inFlight?: number; latencyEwmaUs?: number; zone?: string; tags?: string[] });
  tag(t: string): this;
}
export class FakeUpstream implements Upstream {
  constructor(name: string);
  withEndpoint(address: string): this;
  with(endpoint: FakeEndpoint): this;
  setHealthy(id: number, healthy: boolean): void;
  candidates(): Candidate[];
  name(): string; address(id: number): string | undefined; zoneName(zone: number): string | undefined;
  localZone(): number; tags(id: number): string[]; tagged(tag: string): number[];
}
