// Plays Lambda's SQS event source mapping on this machine, against an SQS endpoint (the embedded
// fauxqs emulator): `consumers` loops, each receiving up to 10 messages, invoking the `deliver`
// handler with them as an SQS event, and deleting what it did not report in batchItemFailures.
// What it reported comes back once its visibility ends; the queue's redrive policy moves a message
// to the dead-letter queue after maxReceiveCount receives. Used by `npm start`, the tests and the
// bench; never deployed.

import {
  DeleteMessageBatchCommand,
  type Message,
  ReceiveMessageCommand,
  type SQSClient,
} from "@aws-sdk/client-sqs";
import type { SQSEvent } from "aws-lambda";

export type DeliverHandler = (event: SQSEvent) => Promise<{
  batchItemFailures: { itemIdentifier: string }[];
}>;

export interface PollerOptions {
  client: SQSClient;
  queueUrl: string;
  /** One handler per consumer: each is its own Lambda instance (module load). */
  handlers: DeliverHandler[];
  /** Called after each invocation with how many messages were delivered (deleted). */
  onBatch?: (deleted: number, failed: number) => void;
}

export interface Poller {
  stop(): Promise<void>;
}

export function startPoller({ client, queueUrl, handlers, onBatch }: PollerOptions): Poller {
  let running = true;
  // Stopping ends the long polls in flight at once instead of after their second.
  const stopping = new AbortController();
  const loop = async (handler: DeliverHandler) => {
    while (running) {
      const received = await client
        .send(
          new ReceiveMessageCommand({
            QueueUrl: queueUrl,
            MaxNumberOfMessages: 10,
            WaitTimeSeconds: 1,
            MessageSystemAttributeNames: ["All"],
          }),
          { abortSignal: stopping.signal },
        )
        .catch(() => undefined);
      const messages = received?.Messages ?? [];
      if (!running || messages.length === 0) continue;
      const { batchItemFailures } = await handler(sqsEvent(messages, queueUrl));
      const failed = new Set(batchItemFailures.map((failure) => failure.itemIdentifier));
      const done = messages.filter((message) => !failed.has(message.MessageId ?? ""));
      if (done.length) {
        await client.send(
          new DeleteMessageBatchCommand({
            QueueUrl: queueUrl,
            Entries: done.map((message, i) => ({
              Id: String(i),
              ReceiptHandle: message.ReceiptHandle,
            })),
          }),
        );
      }
      onBatch?.(done.length, failed.size);
    }
  };
  const loops = handlers.map(loop);
  return {
    async stop() {
      running = false;
      stopping.abort();
      await Promise.all(loops);
    },
  };
}

/** Messages as the event source mapping hands them to the function. */
function sqsEvent(messages: Message[], queueUrl: string): SQSEvent {
  const queueName = queueUrl.split("/").pop() ?? "queue";
  return {
    Records: messages.map((message) => ({
      messageId: message.MessageId ?? "",
      receiptHandle: message.ReceiptHandle ?? "",
      body: message.Body ?? "",
      attributes: {
        ApproximateReceiveCount: message.Attributes?.ApproximateReceiveCount ?? "1",
        SentTimestamp: message.Attributes?.SentTimestamp ?? String(Date.now()),
        SenderId: message.Attributes?.SenderId ?? "local",
        ApproximateFirstReceiveTimestamp:
          message.Attributes?.ApproximateFirstReceiveTimestamp ?? String(Date.now()),
        MessageGroupId: message.Attributes?.MessageGroupId,
        MessageDeduplicationId: message.Attributes?.MessageDeduplicationId,
        SequenceNumber: message.Attributes?.SequenceNumber,
      },
      messageAttributes: {},
      md5OfBody: message.MD5OfBody ?? "",
      eventSource: "aws:sqs",
      eventSourceARN: `arn:aws:sqs:us-east-1:000000000000:${queueName}`,
      awsRegion: "us-east-1",
    })),
  };
}
