// What Refiner holds of each contact (lib/pipeline/unchanged.ts), kept in the same DynamoDB table
// as the delivered messageIds (serverless.yml, DeliveredTable), so that every consumer sees it.
// Only the queue's consumer reads and writes it: SQS FIFO hands it one message of a contact at a
// time, so a contact's item is never written by two instances at once.
//
// An item's key is `contact#` and a hash of the destination and the contact (never the contact's
// id itself, and always within DynamoDB's key size); `state` holds the JSON of the state, whose
// traits are hashed; `expiresAt` lets DynamoDB's TTL remove it once it is no longer trusted.
// Nothing here rejects: a table that fails answers "unknown" (one more request to Refiner), and a
// state that could not be written is deleted, so that no stale state can make a later skip wrong.

import type { ContactState, SentMemory } from "../pipeline/unchanged.ts";
import { hash } from "../pipeline/unchanged.ts";
import { dynamoClient, dynamoSdk } from "./dynamodb.ts";

/** What the caller does when the table fails: log it and count it. */
export type StateUnavailable = (action: "load" | "store" | "forget", error: unknown) => void;

export function dynamoContactStates(
  tableName: string,
  env: Record<string, string | undefined>,
  unavailable: StateUnavailable,
): SentMemory {
  // Built on first use, as the table of delivered ids is (dynamodb.ts).
  let client: ReturnType<typeof dynamoClient> | undefined;
  const built = () => {
    client ??= dynamoClient(env);
    return client;
  };
  const sdk = dynamoSdk;
  const key = (contact: string) => ({ messageId: { S: `contact#${hash(contact)}` } });

  const forget = async (contact: string): Promise<void> => {
    try {
      await built().send(
        new (sdk().DeleteItemCommand)({ TableName: tableName, Key: key(contact) }),
      );
    } catch (error) {
      unavailable("forget", error);
    }
  };
  return {
    async load(contact) {
      try {
        const answer = await built().send(
          new (sdk().GetItemCommand)({
            TableName: tableName,
            Key: key(contact),
            ConsistentRead: true,
          }),
        );
        return parseState(answer.Item?.state?.S);
      } catch (error) {
        unavailable("load", error);
        return undefined;
      }
    },
    async store(contact, state) {
      try {
        await built().send(
          new (sdk().PutItemCommand)({
            TableName: tableName,
            Item: {
              ...key(contact),
              state: { S: JSON.stringify(state) },
              expiresAt: { N: String(Math.ceil(state.until / 1000)) },
            },
          }),
        );
      } catch (error) {
        unavailable("store", error);
        await forget(contact);
      }
    },
    forget,
  };
}

/** A stored state, or undefined for anything that is not one (nothing is trusted that is not). */
function parseState(text: string | undefined): ContactState | undefined {
  if (text === undefined) return undefined;
  try {
    const value: unknown = JSON.parse(text);
    if (typeof value !== "object" || value === null) return undefined;
    const { traits, until, email, account } = value as Record<string, unknown>;
    if (typeof traits !== "object" || traits === null || typeof until !== "number")
      return undefined;
    return {
      traits: Object.fromEntries(
        Object.entries(traits).filter(
          (entry): entry is [string, string] => typeof entry[1] === "string",
        ),
      ),
      until,
      ...(typeof email === "string" ? { email } : {}),
      ...(typeof account === "string" ? { account } : {}),
    };
  } catch {
    return undefined;
  }
}
