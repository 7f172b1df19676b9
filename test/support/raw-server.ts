// Raw node:http servers on 127.0.0.1, for Refiners that misbehave in ways the emulator does not
// (trickle, flood, redirect, reset); each is closed once the file's tests are done.

import { createServer, type RequestListener, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import { afterAll } from "vitest";

/** For one test file: `serve(listener)` starts a server and resolves with its URL as an apiBaseUrl. */
export function rawServers(): (listener: RequestListener) => Promise<string> {
  const servers: Server[] = [];
  afterAll(() => {
    for (const server of servers) {
      server.closeAllConnections();
      server.close();
    }
  });
  return async (listener) => {
    const server = createServer(listener);
    servers.push(server);
    await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
    return `http://127.0.0.1:${(server.address() as AddressInfo).port}/v1`;
  };
}
