// `refiner-destination secret`: creates or updates the stage's secret in AWS Secrets Manager, the one
// place the deployed functions read their secrets from (lib/aws/secrets.ts). The values are asked
// for on standard input, never taken from a command line, and never printed, except a webhook token
// the command makes itself, which Segment's destination needs.
//
// - First run: asks for the Refiner API key and the Webhooks destination's shared secret, makes a
//   webhook token, and creates `refiner-destination/<stage>`.
// - Later runs: an empty answer keeps a value. `--rotate` makes a new token and keeps the old one
//   (and an old shared secret that is replaced) as *_PREVIOUS, accepted beside the new ones;
//   `--end-rotation` removes the previous values once Segment sends only the new ones. A second
//   `--rotate` while previous values are kept is refused: it would drop a token Segment may still
//   send, and Segment's calls with it would get 401.
// - A new token is printed only once the secret holding it was written: a failed write leaves the
//   user with no token that works nowhere.

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
  const { store, say } = options;
  const secretId = secretIdOf(options.stage);
  const existing = await store.read(secretId);
  const values: Record<string, string> = { ...existing };
  if (
    options.rotate &&
    (values.SEGMENT_WEBHOOK_TOKEN_PREVIOUS || values.SEGMENT_SHARED_SECRET_PREVIOUS)
  ) {
    say(
      `A rotation is under way: ${secretId} still keeps the previous values beside the new ones, and Segment may still send them. Once Segment sends only the new ones, run --end-rotation, then --rotate again. Nothing was written.`,
    );
    return 2;
  }
  let newToken = false;
  if (options.endRotation) {
    delete values.SEGMENT_SHARED_SECRET_PREVIOUS;
    delete values.SEGMENT_WEBHOOK_TOKEN_PREVIOUS;
  } else {
    const asked = await askValues(options, values);
    if (asked !== 0) return asked;
    if (!values.SEGMENT_WEBHOOK_TOKEN || options.rotate) {
      if (options.rotate && values.SEGMENT_WEBHOOK_TOKEN) {
        values.SEGMENT_WEBHOOK_TOKEN_PREVIOUS = values.SEGMENT_WEBHOOK_TOKEN;
      }
      values.SEGMENT_WEBHOOK_TOKEN = randomBytes(32).toString("hex");
      newToken = true;
    }
  }

  await store.write(secretId, values, existing === undefined);
  const names = Object.keys(values).sort().join(", ");
  say(`${existing ? "Updated" : "Created"} the secret ${secretId} with ${names}.`);
  if (newToken) {
    say(
      `New webhook token; put it in the Webhooks destination's URL as ?token=${values.SEGMENT_WEBHOOK_TOKEN}`,
    );
  }
  say(
    existing
      ? "Running functions read it again within 5 minutes; no deploy is needed."
      : `Now deploy: npx serverless deploy --stage ${options.stage} --param alarmEmail=you@example.com`,
  );
  return 0;
}

/** Asks for the API key and the shared secret; 0, or the exit status when nothing may be written. */
async function askValues(options: SecretOptions, values: Record<string, string>): Promise<number> {
  const { ask, say } = options;
  const keep = (name: string) => (values[name] ? " (Enter keeps the current one)" : "");
  const apiKey = (await ask(`Refiner API key${keep("REFINER_API_KEY")}: `)).trim();
  if (apiKey) values.REFINER_API_KEY = apiKey;
  if (!values.REFINER_API_KEY) {
    say("A Refiner API key is required (Refiner → Integrations → Segment). Nothing was written.");
    return 2;
  }
  const shared = (
    await ask(`Segment Webhooks shared secret, or Enter for none${keep("SEGMENT_SHARED_SECRET")}: `)
  ).trim();
  if (shared && shared !== values.SEGMENT_SHARED_SECRET) {
    if (options.rotate && values.SEGMENT_SHARED_SECRET) {
      values.SEGMENT_SHARED_SECRET_PREVIOUS = values.SEGMENT_SHARED_SECRET;
    }
    values.SEGMENT_SHARED_SECRET = shared;
  }
  return 0;
}

/**
 * What to tell the user about an error of the store: what to set when the SDK found no region or
 * no credentials, else the service's error by name. Never a value of the secret.
 */
export function awsProblem(error: unknown): string {
  const name = String((error as { name?: unknown })?.name ?? "Error");
  const message = String((error as { message?: unknown })?.message ?? error);
  if (/region is missing/i.test(message)) {
    return "no AWS region: set AWS_REGION (e.g. AWS_REGION=us-east-1), or AWS_PROFILE to a profile that has one.";
  }
  if (name === "CredentialsProviderError" || /could not load credentials/i.test(message)) {
    return "no AWS credentials: set AWS_PROFILE (after aws sso login, if it uses SSO), or AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY.";
  }
  return `${name}: ${message.split("\n")[0]}`;
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
