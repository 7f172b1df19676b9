// The table of delivered messageIds on DynamoDB (serverless.yml, DeliveredTable), built once per
// cold start. The key is the messageId; `expiresAt` (epoch seconds) lets DynamoDB's TTL delete an
// item once no copy of its event can still arrive. A local endpoint (AWS_ENDPOINT_URL_DYNAMODB or
// AWS_ENDPOINT_URL, as for the tests' emulator) is given to the client explicitly, as for SQS.

import type { AttributeValue, WriteRequest } from "@aws-sdk/client-dynamodb";
import type { DeliveredTable } from "../delivery/delivered.ts";

/**
 * How long a delivered id is kept: a copy can arrive from Segment's resends (4 hours), and a
 * message can wait 14 days in the events queue and 14 more in the dead-letter queue before it is
 * moved back. 30 days covers all of it.
 */
export const DELIVERED_TTL_SECONDS = 30 * 24 * 60 * 60;
/** DynamoDB's limits: BatchGetItem takes 100 keys, BatchWriteItem 25 items. */
const GET_KEYS = 100;
const WRITE_ITEMS = 25;
/** Unprocessed keys or items (DynamoDB's throttling) are tried again this many times. */
const ATTEMPTS = 3;

/** The table, its client built on first use. */
export function dynamoDeliveredTable(
  tableName: string,
  env: Record<string, string | undefined>,
  now: () => number = Date.now,
): DeliveredTable {
  let table: DeliveredTable | undefined;
  const built = () => {
    table ??= buildTable(tableName, env, now);
    return table;
  };
  return {
    find: (ids) => built().find(ids),
    record: (ids) => built().record(ids),
  };
}

function buildTable(
  tableName: string,
  env: Record<string, string | undefined>,
  now: () => number,
): DeliveredTable {
  // Required on first use, not imported at the top: a direct-mode cold start stays as light as it
  // was without the table (docs/performance.md), and its first event pays for the SDK instead.
  // The Lambda runtime ships the SDK; the bundle leaves it external.
  const sdk: typeof import("@aws-sdk/client-dynamodb") = require("@aws-sdk/client-dynamodb");
  const { BatchGetItemCommand, BatchWriteItemCommand, DynamoDBClient } = sdk;
  const endpoint = env.AWS_ENDPOINT_URL_DYNAMODB || env.AWS_ENDPOINT_URL;
  const client = new DynamoDBClient({
    ...(endpoint ? { endpoint } : {}),
    // A table that does not answer must not eat the time Refiner's requests need.
    maxAttempts: 2,
    requestHandler: { connectionTimeout: 500, requestTimeout: 1500 },
  });
  return {
    async find(ids) {
      const found = new Set<string>();
      for (let at = 0; at < ids.length; at += GET_KEYS) {
        let keys: Record<string, AttributeValue>[] = ids
          .slice(at, at + GET_KEYS)
          .map((id) => ({ messageId: { S: id } }));
        for (let attempt = 0; attempt < ATTEMPTS && keys.length; attempt++) {
          const answer = await client.send(
            new BatchGetItemCommand({
              RequestItems: {
                [tableName]: {
                  Keys: keys,
                  ConsistentRead: true,
                  ProjectionExpression: "messageId",
                },
              },
            }),
          );
          for (const item of answer.Responses?.[tableName] ?? []) {
            const id = item.messageId?.S;
            if (id !== undefined) found.add(id);
          }
          keys = answer.UnprocessedKeys?.[tableName]?.Keys ?? [];
        }
        // Keys still unprocessed count as not delivered: at worst a duplicate, never a loss.
      }
      return found;
    },
    async record(ids) {
      const expiresAt = String(Math.floor(now() / 1000) + DELIVERED_TTL_SECONDS);
      const unique = [...new Set(ids)];
      for (let at = 0; at < unique.length; at += WRITE_ITEMS) {
        let writes: WriteRequest[] = unique.slice(at, at + WRITE_ITEMS).map((id) => ({
          PutRequest: { Item: { messageId: { S: id }, expiresAt: { N: expiresAt } } },
        }));
        for (let attempt = 0; attempt < ATTEMPTS && writes.length; attempt++) {
          const answer = await client.send(
            new BatchWriteItemCommand({ RequestItems: { [tableName]: writes } }),
          );
          writes = answer.UnprocessedItems?.[tableName] ?? [];
        }
        if (writes.length) throw new Error(`DynamoDB left ${writes.length} ids unwritten`);
      }
    },
  };
}
