// An embedded DynamoDB (dynalite, which answers the real SDK) holding the table of delivered
// messageIds, created from the declaration in serverless.yml (DeliveredTable), so that the tests
// and npm start use the schema that deploys. dynalite has no TTL API; the TTL attribute is written
// all the same. Used by `npm start`, the tests and the bench; never deployed.

import { readFileSync } from "node:fs";
import type { AddressInfo } from "node:net";
import { join } from "node:path";
import {
  CreateTableCommand,
  type CreateTableCommandInput,
  DynamoDBClient,
  ScanCommand,
} from "@aws-sdk/client-dynamodb";
import dynalite from "dynalite";
import { load } from "js-yaml";

// The SDK warns on every process under Node 22, which Lambda runs and this machine does not.
process.env.AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED ??= "true";

export interface LocalTable {
  /** What AWS_ENDPOINT_URL_DYNAMODB points at. */
  endpoint: string;
  tableName: string;
  /** Every delivered messageId with its expiry (epoch seconds). */
  items(): Promise<Map<string, number>>;
  stop(): Promise<void>;
}

/** The environment a Lambda instance needs to use the local table: any credentials, a region. */
export function localTableEnvironment(table: LocalTable): Record<string, string> {
  return {
    AWS_REGION: "us-east-1",
    AWS_ACCESS_KEY_ID: "local",
    AWS_SECRET_ACCESS_KEY: "local",
    AWS_ENDPOINT_URL_DYNAMODB: table.endpoint,
    REFINER_DELIVERED_TABLE: table.tableName,
  };
}

/** serverless.yml's DeliveredTable properties (`root` is the repository), as CloudFormation reads them. */
export function declaredTable(root = process.cwd()): CreateTableCommandInput & {
  TimeToLiveSpecification: { AttributeName: string; Enabled: boolean };
} {
  // `${…}` variables and `!` tags are text to js-yaml; only the table's own properties are read.
  // `resources` is a list of parts that serverless merges; one of them declares the table.
  const template = load(readFileSync(join(root, "serverless.yml"), "utf8")) as {
    resources: {
      Resources?: { DeliveredTable?: { Properties: ReturnType<typeof declaredTable> } };
    }[];
  };
  const table = template.resources.find((part) => part.Resources?.DeliveredTable)?.Resources
    ?.DeliveredTable;
  if (!table) throw new Error("serverless.yml declares no DeliveredTable");
  return table.Properties;
}

export async function startLocalTable({
  tableName = "refiner-delivered",
  root,
}: {
  tableName?: string;
  root?: string;
} = {}): Promise<LocalTable> {
  const server = dynalite({ createTableMs: 0, deleteTableMs: 0, updateTableMs: 0 });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const endpoint = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  const client = new DynamoDBClient({
    endpoint,
    region: "us-east-1",
    credentials: { accessKeyId: "local", secretAccessKey: "local" },
  });
  const { TimeToLiveSpecification, ...table } = declaredTable(root);
  await client.send(new CreateTableCommand({ ...table, TableName: tableName }));
  return {
    endpoint,
    tableName,
    async items() {
      const found = new Map<string, number>();
      let start: Record<string, never> | undefined;
      do {
        const page = await client.send(
          new ScanCommand({ TableName: tableName, ExclusiveStartKey: start }),
        );
        for (const item of page.Items ?? []) {
          found.set(
            String(item.messageId?.S),
            Number(item[TimeToLiveSpecification.AttributeName]?.N),
          );
        }
        start = page.LastEvaluatedKey as typeof start;
      } while (start);
      return found;
    },
    async stop() {
      client.destroy();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}
