// The SQS client, built once per cold start, configured the standard way (region, credentials
// from the environment). A local endpoint (AWS_ENDPOINT_URL_SQS or AWS_ENDPOINT_URL, as for the
// embedded emulator) is given to the client explicitly: otherwise the SDK sends each request to
// the queue URL's host, which for a local emulator does not resolve.

import type { QueueClient } from "../queue/queue.ts";

export function sqsQueueClient(env: Record<string, string | undefined>): QueueClient {
  // Required here, not imported at the top: only a queued deployment loads the SDK at cold start.
  // The Lambda runtime ships it; the bundle leaves it external.
  const sdk: typeof import("@aws-sdk/client-sqs") = require("@aws-sdk/client-sqs");
  const { ChangeMessageVisibilityCommand, SendMessageBatchCommand, SQSClient } = sdk;
  const endpoint = env.AWS_ENDPOINT_URL_SQS || env.AWS_ENDPOINT_URL;
  const client = new SQSClient({
    ...(endpoint ? { endpoint } : {}),
    // Without these an endpoint that never answers holds a call until the function times out (the
    // SDK's requestTimeout only warns unless told to throw). The doors also give up at their
    // deadline (`signal`); these bound the consumer's calls.
    requestHandler: { connectionTimeout: 1000, requestTimeout: 5000, throwOnRequestTimeout: true },
  });
  return {
    async sendBatch(queueUrl, entries, signal) {
      const answer = await client.send(
        new SendMessageBatchCommand({ QueueUrl: queueUrl, Entries: entries }),
        signal ? { abortSignal: signal } : {},
      );
      return (answer.Failed ?? []).map((failure) => ({
        id: failure.Id ?? "",
        reason: `${failure.Code ?? "error"}: ${failure.Message ?? ""}`,
        // A sender fault is the entry's own (InvalidMessageContents, too large, …): sending it
        // again cannot help. Throttling is the exception.
        permanent: failure.SenderFault === true && !/throttl/i.test(failure.Code ?? ""),
      }));
    },
    async changeVisibility(queueUrl, receiptHandle, seconds) {
      await client.send(
        new ChangeMessageVisibilityCommand({
          QueueUrl: queueUrl,
          ReceiptHandle: receiptHandle,
          VisibilityTimeout: seconds,
        }),
      );
    },
  };
}
