// The three AWS Lambda handlers over one cold start: `segment` (Segment's AWS Lambda destination),
// `webhook` (the Function URL for Segment's Webhooks destination) and `deliver` (the SQS queue's
// consumer). handler.ts builds them from the process's environment and fetch; tests build a fresh
// set for each cold start they need.

import type { APIGatewayProxyEventV2, SQSEvent } from "aws-lambda";
import type { Fetch } from "../refiner/client.ts";
import {
  coldStart,
  consumeQueue,
  type InvocationContext,
  invocation,
  invokeDirect,
} from "./lambda.ts";
import type { Environment } from "./lambda-config.ts";
import { handleWebhook } from "./webhook.ts";

export function lambdaHandlers(env: Environment, fetch: Fetch) {
  const lambda = coldStart(env, fetch);
  return {
    segment: (event: unknown, context?: InvocationContext) =>
      invocation(lambda, context, "door", (runtime) => invokeDirect(event, lambda, runtime)),
    webhook: (event: APIGatewayProxyEventV2 | null | undefined, context?: InvocationContext) =>
      invocation(lambda, context, "door", (runtime) => handleWebhook(event, lambda, runtime)),
    deliver: (event: SQSEvent, context?: InvocationContext) =>
      invocation(lambda, context, "consumer", (runtime) =>
        consumeQueue(event.Records, lambda, runtime),
      ),
  };
}

export type LambdaHandlers = ReturnType<typeof lambdaHandlers>;
