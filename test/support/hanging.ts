// A TCP server that accepts every connection and never answers: an AWS endpoint that hangs.

import { createServer, type Socket } from "node:net";

export interface HangingServer {
  /** http://127.0.0.1:<port>, for AWS_ENDPOINT_URL_SQS and the like. */
  endpoint: string;
  /** Connections accepted so far. */
  connections: number;
  /** Resolves once the first connection is accepted: a call reached the endpoint. */
  connected: Promise<void>;
  stop(): Promise<void>;
}

export async function startHangingServer(): Promise<HangingServer> {
  const sockets = new Set<Socket>();
  let accepted = () => {};
  const connected = new Promise<void>((resolve) => {
    accepted = resolve;
  });
  const hanging: HangingServer = { endpoint: "", connections: 0, connected, stop: async () => {} };
  const server = createServer((socket) => {
    hanging.connections += 1;
    accepted();
    sockets.add(socket);
    socket.on("error", () => {});
    socket.on("close", () => sockets.delete(socket));
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const address = server.address();
  hanging.endpoint = `http://127.0.0.1:${typeof address === "object" && address ? address.port : 0}`;
  hanging.stop = () =>
    new Promise((resolve) => {
      for (const socket of sockets) socket.destroy();
      server.close(() => resolve());
    });
  return hanging;
}
