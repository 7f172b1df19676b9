// A loopback stand-in for AWS Secrets Manager: the part of its JSON protocol the destination and
// `refiner-destination secret` use (GetSecretValue, CreateSecret, PutSecretValue), answered the way
// the real service answers, including its ResourceNotFoundException. It can also refuse every call,
// as an unreachable or forbidden service would, or take calls and never answer, as a hung one would.
// Used by the tests; never deployed.

import { createServer } from "node:http";
import type { AddressInfo } from "node:net";

export interface LocalSecrets {
  /** What AWS_ENDPOINT_URL_SECRETS_MANAGER points at. */
  endpoint: string;
  /** The secrets by name, as their SecretString. */
  secrets: Map<string, string>;
  /** The calls made, by action. */
  calls: string[];
  /** While set, every call is answered with this error (e.g. AccessDeniedException). */
  failWith: string | undefined;
  /** While true, calls are taken and never answered (until `stop`). */
  hangs: boolean;
  /** Called with each call's action as it arrives (a test's event). */
  onCall?: (action: string) => void;
  stop(): Promise<void>;
}

export async function startLocalSecrets(): Promise<LocalSecrets> {
  const local: LocalSecrets = {
    endpoint: "",
    secrets: new Map(),
    calls: [],
    failWith: undefined,
    hangs: false,
    stop: async () => {},
  };
  const hung = new Set<import("node:http").ServerResponse>();
  const server = createServer(async (req, res) => {
    const chunks: Buffer[] = [];
    for await (const chunk of req) chunks.push(chunk as Buffer);
    const input = JSON.parse(Buffer.concat(chunks).toString() || "{}") as Record<string, string>;
    const action = String(req.headers["x-amz-target"] ?? "").replace("secretsmanager.", "");
    local.calls.push(action);
    local.onCall?.(action);
    if (local.hangs) {
      hung.add(res);
      return;
    }
    const answer = (status: number, body: object) => {
      res.writeHead(status, { "content-type": "application/x-amz-json-1.1" });
      res.end(JSON.stringify(body));
    };
    const error = (type: string, message: string) =>
      answer(400, { __type: type, message, Message: message });
    if (local.failWith) return error(local.failWith, "refused by the local stand-in");
    const name = input.SecretId ?? input.Name ?? "";
    const arn = `arn:aws:secretsmanager:us-east-1:000000000000:secret:${name}-AbCdEf`;
    if (action === "GetSecretValue") {
      const value = local.secrets.get(name);
      if (value === undefined) {
        return error(
          "ResourceNotFoundException",
          "Secrets Manager can't find the specified secret.",
        );
      }
      return answer(200, { ARN: arn, Name: name, SecretString: value, VersionId: "v1" });
    }
    if (action === "CreateSecret") {
      if (local.secrets.has(name)) {
        return error(
          "ResourceExistsException",
          `The operation failed because the secret ${name} already exists.`,
        );
      }
      local.secrets.set(name, input.SecretString ?? "");
      return answer(200, { ARN: arn, Name: name, VersionId: "v1" });
    }
    if (action === "PutSecretValue") {
      if (!local.secrets.has(name)) {
        return error(
          "ResourceNotFoundException",
          "Secrets Manager can't find the specified secret.",
        );
      }
      local.secrets.set(name, input.SecretString ?? "");
      return answer(200, { ARN: arn, Name: name, VersionId: "v2" });
    }
    return error("InvalidRequestException", `${action} is not played by the local stand-in`);
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  local.endpoint = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  local.stop = () =>
    new Promise<void>((resolve) => {
      for (const res of hung) res.destroy();
      server.close(() => resolve());
    });
  return local;
}
