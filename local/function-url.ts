// The event a Lambda Function URL hands its function (API Gateway payload format 2.0), built from
// the parts of an HTTP request. Used by `npm start`'s local server and by the webhook tests.

import type { APIGatewayProxyEventV2 } from "aws-lambda";

export interface HttpRequestParts {
  method: string;
  /** Path with optional query, e.g. `/?a=1`. */
  url: string;
  headers: Record<string, string | string[] | undefined>;
  body: Buffer;
  sourceIp?: string;
}

const TEXT_TYPES = /^(application\/(json|x-www-form-urlencoded)|text\/)/i;

export function functionUrlEvent(
  request: HttpRequestParts,
  now = new Date(),
): APIGatewayProxyEventV2 {
  const url = new URL(request.url, "http://localhost");
  const headers: Record<string, string> = {};
  for (const [name, value] of Object.entries(request.headers)) {
    if (value !== undefined)
      headers[name.toLowerCase()] = Array.isArray(value) ? value.join(",") : value;
  }
  const host = headers.host ?? "abcdefghijklmnopqrstuvwxyz012345.lambda-url.us-east-1.on.aws";
  // Function URLs base64-encode bodies that are not text.
  const isText = TEXT_TYPES.test(headers["content-type"] ?? "");
  const query = Object.fromEntries(url.searchParams);
  return {
    version: "2.0",
    routeKey: "$default",
    rawPath: url.pathname,
    rawQueryString: url.search.slice(1),
    headers,
    ...(Object.keys(query).length ? { queryStringParameters: query } : {}),
    requestContext: {
      accountId: "anonymous",
      apiId: host.split(".")[0] ?? "local",
      domainName: host,
      domainPrefix: host.split(".")[0] ?? "local",
      http: {
        method: request.method.toUpperCase(),
        path: url.pathname,
        protocol: "HTTP/1.1",
        sourceIp: request.sourceIp ?? "127.0.0.1",
        userAgent: headers["user-agent"] ?? "",
      },
      requestId: `${now.getTime().toString(16)}-${Math.random().toString(16).slice(2, 10)}`,
      routeKey: "$default",
      stage: "$default",
      time: now.toUTCString(),
      timeEpoch: now.getTime(),
    },
    ...(request.body.length
      ? { body: isText ? request.body.toString("utf8") : request.body.toString("base64") }
      : {}),
    isBase64Encoded: request.body.length > 0 && !isText,
  };
}
