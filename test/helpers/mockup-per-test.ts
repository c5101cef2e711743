/**
 * A Redfish mockup server (redfish-mockup-server.ts) started before each test of the file, and the
 * transports a test makes against it closed after it, then the server: for tests of one transport's
 * requests and connections.
 */
import { afterEach, beforeEach } from 'vitest';
import type { HttpResponse, HttpTransport } from '../../src/redfish/index.js';
import { startMockupServer, type MockupServer } from './redfish-mockup-server.js';

export interface MockupPerTest {
  /** this test's server */
  readonly server: MockupServer;
  /** `t`, closed after the test */
  track(t: HttpTransport): HttpTransport;
  /** HTTP Basic with the server's credentials */
  authorization(): string;
  get(t: HttpTransport, path: string, signal?: AbortSignal): Promise<HttpResponse>;
  /** requests the server got for exactly `path` */
  countOf(path: string, method?: string): number;
}

export function mockupPerTest(): MockupPerTest {
  let server: MockupServer | undefined;
  const transports: HttpTransport[] = [];
  beforeEach(async () => {
    server = await startMockupServer();
  });
  afterEach(async () => {
    await Promise.all(transports.splice(0).map((t) => t.close(0)));
    await server?.close();
  });
  const mock: MockupPerTest = {
    get server() {
      if (server === undefined) throw new Error('the mockup server starts before each test');
      return server;
    },
    track(t) {
      transports.push(t);
      return t;
    },
    authorization: () => `Basic ${Buffer.from(`${mock.server.user}:${mock.server.password}`).toString('base64')}`,
    get: (t, path, signal) => t.request({ method: 'GET', path, headers: { authorization: mock.authorization() }, ...(signal ? { signal } : {}) }),
    countOf: (path, method = 'GET') => mock.server.requests.filter((r) => r.method === method && r.path === path).length,
  };
  return mock;
}
