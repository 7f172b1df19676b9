// The stage's secret in AWS Secrets Manager (REFINER_SECRET_ID): a JSON object whose keys are the
// secret variables (REFINER_API_KEY, SEGMENT_SHARED_SECRET, …). Read by the function itself, so
// no value is ever in a template, a state file or the function's configuration. A local endpoint
// (AWS_ENDPOINT_URL_SECRETS_MANAGER or AWS_ENDPOINT_URL) is given to the client explicitly.

/** Reads the secret's keys; rejects when it cannot be read or is not a JSON object of strings. */
export type SecretReader = (
  secretId: string,
  signal?: AbortSignal,
) => Promise<Record<string, string>>;

export function secretsManagerReader(env: Record<string, string | undefined>): SecretReader {
  let client: import("@aws-sdk/client-secrets-manager").SecretsManagerClient | undefined;
  return async (secretId, signal) => {
    // Required on first use: the cold start stays light, and the Lambda runtime ships the SDK.
    const sdk: typeof import("@aws-sdk/client-secrets-manager") = require("@aws-sdk/client-secrets-manager");
    const { GetSecretValueCommand, SecretsManagerClient } = sdk;
    const endpoint = env.AWS_ENDPOINT_URL_SECRETS_MANAGER || env.AWS_ENDPOINT_URL;
    client ??= new SecretsManagerClient({
      ...(endpoint ? { endpoint } : {}),
      maxAttempts: 2,
      // The SDK's requestTimeout only warns unless told to throw.
      requestHandler: {
        connectionTimeout: 1000,
        requestTimeout: 2000,
        throwOnRequestTimeout: true,
      },
    });
    const { SecretString } = await client.send(
      new GetSecretValueCommand({ SecretId: secretId }),
      signal ? { abortSignal: signal } : {},
    );
    return parseSecret(SecretString);
  };
}

/** The secret's text → its keys. Its values are never put in an error message. */
export function parseSecret(text: string | undefined): Record<string, string> {
  let parsed: unknown;
  try {
    parsed = JSON.parse(text ?? "");
  } catch {
    throw new Error("the secret is not a JSON object (refiner-destination secret writes one)");
  }
  if (!parsed || typeof parsed !== "object" || Array.isArray(parsed)) {
    throw new Error("the secret is not a JSON object (refiner-destination secret writes one)");
  }
  const values: Record<string, string> = {};
  for (const [key, value] of Object.entries(parsed)) {
    if (typeof value !== "string") throw new Error(`the secret's ${key} is not a string`);
    values[key] = value;
  }
  return values;
}
