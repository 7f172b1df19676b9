// An embedded SQS (fauxqs, which speaks SQS's protocol to the real SDK) with the queues
// serverless.yml declares: a FIFO queue and its dead-letter queue. Used by `npm start`, the tests
// and the bench; never deployed.

import { GetQueueAttributesCommand, SQSClient } from "@aws-sdk/client-sqs";
import { type FauxqsServer, startFauxqs } from "fauxqs";

// The SDK warns on every process under Node 22, which Lambda runs and this machine does not.
process.env.AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED ??= "true";

export interface LocalQueues {
  server: FauxqsServer;
  /** What AWS_ENDPOINT_URL_SQS points at. */
  endpoint: string;
  queueUrl: string;
  deadLetterUrl: string;
  client: SQSClient;
  /** Messages visible and in flight, as SQS counts them. */
  count(queueUrl: string): Promise<number>;
  stop(): Promise<void>;
}

/** The environment the SDK needs to reach the emulator: any credentials, a region, the endpoint. */
export function localSqsEnvironment(endpoint: string): Record<string, string> {
  return {
    AWS_REGION: "us-east-1",
    AWS_ACCESS_KEY_ID: "local",
    AWS_SECRET_ACCESS_KEY: "local",
    AWS_ENDPOINT_URL_SQS: endpoint,
  };
}

export async function startLocalQueues({
  name = "refiner-events",
  maxReceiveCount = 30,
  visibilityTimeoutSeconds = 360,
} = {}): Promise<LocalQueues> {
  const server = await startFauxqs({ port: 0, logger: false });
  const endpoint = `http://127.0.0.1:${server.port}`;
  const deadLetter = server.createQueue(`${name}-dead-letters.fifo`, {
    attributes: { FifoQueue: "true", MessageRetentionPeriod: "1209600" },
  });
  const queue = server.createQueue(`${name}.fifo`, {
    attributes: {
      FifoQueue: "true",
      MessageRetentionPeriod: "1209600",
      VisibilityTimeout: String(visibilityTimeoutSeconds),
      RedrivePolicy: JSON.stringify({
        deadLetterTargetArn: deadLetter.queueArn,
        maxReceiveCount: String(maxReceiveCount),
      }),
    },
  });
  const env = localSqsEnvironment(endpoint);
  const client = new SQSClient({
    endpoint,
    region: env.AWS_REGION,
    credentials: { accessKeyId: "local", secretAccessKey: "local" },
  });
  return {
    server,
    endpoint,
    queueUrl: queue.queueUrl,
    deadLetterUrl: deadLetter.queueUrl,
    client,
    async count(queueUrl) {
      const { Attributes } = await client.send(
        new GetQueueAttributesCommand({
          QueueUrl: queueUrl,
          AttributeNames: ["ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible"],
        }),
      );
      return (
        Number(Attributes?.ApproximateNumberOfMessages ?? 0) +
        Number(Attributes?.ApproximateNumberOfMessagesNotVisible ?? 0)
      );
    },
    async stop() {
      client.destroy();
      await server.stop();
    },
  };
}
