// The table of delivered messageIds on DynamoDB (serverless.yml, DeliveredTable), built once per
// cold start. The key is the messageId (a digest of it when it is long: tableKey); `expiresAt`
// (epoch seconds) lets DynamoDB's TTL delete an item once no copy of its event can still arrive.
// A local endpoint (AWS_ENDPOINT_URL_DYNAMODB or AWS_ENDPOINT_URL, as for the tests' emulator) is
// given to the client explicitly, as for SQS.

import type { AttributeValue, WriteRequest } from "@aws-sdk/client-dynamodb";
import type { IdempotencyTable } from "../pipeline/idempotency.ts";
import { pool } from "../pool.ts";

/**
 * How long a delivered id is kept: a copy can arrive from Segment's resends (4 hours), and a
 * message can wait 14 days in the events queue and 14 more in the dead-letter queue before it is
 * moved back. 30 days covers all of it.
 */
export const DELIVERED_TTL_SECONDS = 30 * 24 * 60 * 60;
/** DynamoDB's limits: BatchGetItem takes 100 keys, BatchWriteItem 25 items. */
const GET_KEYS = 100;
const WRITE_ITEMS = 25;
/** Batch calls in flight at once: a 4,000-event webhook batch takes 40 lookups. */
const CALLS_IN_FLIGHT = 8;
/** Unprocessed keys or items (DynamoDB's throttling) are tried again this many times. */
const ATTEMPTS = 3;

/**
 * The longest messageId kept as the key as it is. DynamoDB refuses a partition key over 2,048 bytes
 * of UTF-8, and one such key fails the whole BatchGetItem of 100; 512 UTF-16 units are at most
 * 1,536 bytes.
 */
export const MAX_KEY_CHARACTERS = 512;
const DIGEST_PREFIX = "sha256:";

/**
 * The table's key for a messageId: the id itself, or for one that is longer than
 * MAX_KEY_CHARACTERS, not well-formed UTF-16 (DynamoDB takes only valid UTF-8) or could be taken
 * for a digest, `sha256:` and the hex SHA-256 of its UTF-8 bytes.
 */
export function tableKey(messageId: string): string {
  const asIs =
    messageId.length <= MAX_KEY_CHARACTERS &&
    !messageId.startsWith(DIGEST_PREFIX) &&
    !LONE_SURROGATE.test(messageId);
  if (asIs) return messageId;
  // Required here, as the SDK below: what a cold start loads stays as it was.
  const { createHash }: typeof import("node:crypto") = require("node:crypto");
  return `${DIGEST_PREFIX}${createHash("sha256").update(messageId, "utf8").digest("hex")}`;
}

// With the u flag a pair is one code point, so only a half without its other half matches.
const LONE_SURROGATE = /\p{Cs}/u;

/** The SDK, required on first use (see buildTable). */
export function dynamoSdk(): typeof import("@aws-sdk/client-dynamodb") {
  return require("@aws-sdk/client-dynamodb");
}

/**
 * A client for the table: at a local endpoint when one is set (AWS_ENDPOINT_URL_DYNAMODB or
 * AWS_ENDPOINT_URL, as for the tests' emulator), and quick to give up.
 */
export function dynamoClient(
  env: Record<string, string | undefined>,
): import("@aws-sdk/client-dynamodb").DynamoDBClient {
  const endpoint = env.AWS_ENDPOINT_URL_DYNAMODB || env.AWS_ENDPOINT_URL;
  return new (dynamoSdk().DynamoDBClient)({
    ...(endpoint ? { endpoint } : {}),
    // A table that does not answer must not eat the time Refiner's requests need.
    maxAttempts: 2,
    // (The SDK's requestTimeout only warns unless told to throw.)
    requestHandler: { connectionTimeout: 500, requestTimeout: 1500, throwOnRequestTimeout: true },
  });
}

/** The table, its client built on first use. */
export function dynamoIdempotencyTable(
  tableName: string,
  env: Record<string, string | undefined>,
  now: () => number = Date.now,
): IdempotencyTable {
  let table: IdempotencyTable | undefined;
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
): IdempotencyTable {
  // Required on first use, not imported at the top: a direct-mode cold start stays as light as it
  // was without the table (docs/performance.md), and its first event pays for the SDK instead.
  // The Lambda runtime ships the SDK; the bundle leaves it external.
  const { BatchGetItemCommand, BatchWriteItemCommand } = dynamoSdk();
  const client = dynamoClient(env);
  return {
    async find(ids) {
      const found = new Set<string>();
      // Each key back to its messageId (two ids with one digest would share their answer).
      const idOf = new Map(ids.map((id) => [tableKey(id), id]));
      await pool(
        chunks([...idOf.keys()], GET_KEYS),
        async (chunk) => {
          let keys: Record<string, AttributeValue>[] = chunk.map((key) => ({
            messageId: { S: key },
          }));
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
              const id = idOf.get(item.messageId?.S ?? "");
              if (id !== undefined) found.add(id);
            }
            keys = answer.UnprocessedKeys?.[tableName]?.Keys ?? [];
          }
          // Keys still unprocessed count as not delivered: at worst a duplicate, never a loss.
        },
        CALLS_IN_FLIGHT,
      );
      return found;
    },
    async record(ids) {
      const expiresAt = String(Math.floor(now() / 1000) + DELIVERED_TTL_SECONDS);
      await pool(
        chunks([...new Set(ids.map(tableKey))], WRITE_ITEMS),
        async (chunk) => {
          let writes: WriteRequest[] = chunk.map((key) => ({
            PutRequest: { Item: { messageId: { S: key }, expiresAt: { N: expiresAt } } },
          }));
          for (let attempt = 0; attempt < ATTEMPTS && writes.length; attempt++) {
            const answer = await client.send(
              new BatchWriteItemCommand({ RequestItems: { [tableName]: writes } }),
            );
            writes = answer.UnprocessedItems?.[tableName] ?? [];
          }
          if (writes.length) throw new Error(`DynamoDB left ${writes.length} ids unwritten`);
        },
        CALLS_IN_FLIGHT,
      );
    },
  };
}

/** `items` in consecutive parts of at most `size`. */
function chunks<T>(items: readonly T[], size: number): T[][] {
  const parts: T[][] = [];
  for (let at = 0; at < items.length; at += size) parts.push(items.slice(at, at + size));
  return parts;
}
