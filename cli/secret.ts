// `refiner-destination secret`: creates or updates the stage's secret in AWS Secrets Manager, the one
// place the deployed functions read their secrets from (lib/aws/secrets.ts). The values are asked
// for on standard input, never taken from a command line, and never printed, except a webhook token
// the command makes itself, which Segment's destination needs.
//
// - First run: asks for the Refiner API key and the Webhooks destination's shared secret, makes a
//   webhook token, and creates `refiner-destination/<stage>`.
// - Later runs: an empty answer keeps a value. `--rotate` makes a new token and keeps the old one
//   (and an old shared secret that is replaced) as *_PREVIOUS, accepted beside the new ones;
//   `--end-rotation` removes the previous values once Segment sends only the new ones.

import { randomBytes } from "node:crypto";

export interface SecretStore {
  /** The secret's keys, or undefined when there is no such secret. */
  read(secretId: string): Promise<Record<string, string> | undefined>;
  write(secretId: string, values: Record<string, string>, create: boolean): Promise<void>;
}

export interface SecretOptions {
  stage: string;
  rotate: boolean;
  endRotation: boolean;
  store: SecretStore;
  /** Asks one question and resolves with the line answered ("" for none). */
  ask(question: string): Promise<string>;
  say(line: string): void;
}

export function secretIdOf(stage: string): string {
  return `refiner-destination/${stage}`;
}

export async function updateSecret(options: SecretOptions): Promise<number> {
  const { store, ask, say } = options;
  const secretId = secretIdOf(options.stage);
  const existing = await store.read(secretId);
  const values: Record<string, string> = { ...existing };
  const keep = (name: string) => (values[name] ? " (Enter keeps the current one)" : "");

  if (options.endRotation) {
    delete values.SEGMENT_SHARED_SECRET_PREVIOUS;
    delete values.SEGMENT_WEBHOOK_TOKEN_PREVIOUS;
  } else {
    const apiKey = (await ask(`Refiner API key${keep("REFINER_API_KEY")}: `)).trim();
    if (apiKey) values.REFINER_API_KEY = apiKey;
    if (!values.REFINER_API_KEY) {
      say("A Refiner API key is required (Refiner → Integrations → Segment). Nothing was written.");
      return 2;
    }
    const shared = (
      await ask(
        `Segment Webhooks shared secret, or Enter for none${keep("SEGMENT_SHARED_SECRET")}: `,
      )
    ).trim();
    if (shared && shared !== values.SEGMENT_SHARED_SECRET) {
      if (options.rotate && values.SEGMENT_SHARED_SECRET) {
        values.SEGMENT_SHARED_SECRET_PREVIOUS = values.SEGMENT_SHARED_SECRET;
      }
      values.SEGMENT_SHARED_SECRET = shared;
    }
    if (!values.SEGMENT_WEBHOOK_TOKEN || options.rotate) {
      if (options.rotate && values.SEGMENT_WEBHOOK_TOKEN) {
        values.SEGMENT_WEBHOOK_TOKEN_PREVIOUS = values.SEGMENT_WEBHOOK_TOKEN;
      }
      values.SEGMENT_WEBHOOK_TOKEN = randomBytes(32).toString("hex");
      say(
        `New webhook token; put it in the Webhooks destination's URL as ?token=${values.SEGMENT_WEBHOOK_TOKEN}`,
      );
    }
  }

  await store.write(secretId, values, existing === undefined);
  const names = Object.keys(values).sort().join(", ");
  say(`${existing ? "Updated" : "Created"} the secret ${secretId} with ${names}.`);
  say(
    existing
      ? "Running functions read it again within 5 minutes; no deploy is needed."
      : `Now deploy: npx serverless deploy --stage ${options.stage} --param alarmEmail=you@example.com`,
  );
  return 0;
}

/** The store on AWS Secrets Manager, with the SDK from node_modules (loaded when first needed). */
export function secretsManagerStore(env: Record<string, string | undefined>): SecretStore {
  const sdk = () =>
    require("@aws-sdk/client-secrets-manager") as typeof import("@aws-sdk/client-secrets-manager");
  let client: import("@aws-sdk/client-secrets-manager").SecretsManagerClient | undefined;
  const connected = () => {
    const endpoint = env.AWS_ENDPOINT_URL_SECRETS_MANAGER || env.AWS_ENDPOINT_URL;
    client ??= new (sdk().SecretsManagerClient)(endpoint ? { endpoint } : {});
    return client;
  };
  return {
    async read(secretId) {
      try {
        const { SecretString } = await connected().send(
          new (sdk().GetSecretValueCommand)({ SecretId: secretId }),
        );
        return JSON.parse(SecretString ?? "{}") as Record<string, string>;
      } catch (error) {
        if ((error as { name?: string }).name === "ResourceNotFoundException") return undefined;
        throw error;
      }
    },
    async write(secretId, values, create) {
      const SecretString = JSON.stringify(values);
      const { CreateSecretCommand, PutSecretValueCommand } = sdk();
      if (create) {
        await connected().send(
          new CreateSecretCommand({
            Name: secretId,
            SecretString,
            Description: "The Refiner destination's secrets (refiner-destination secret)",
          }),
        );
      } else {
        await connected().send(new PutSecretValueCommand({ SecretId: secretId, SecretString }));
      }
    },
  };
}
