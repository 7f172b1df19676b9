// The requests of a backfill, one queue per contact: a contact's requests go out one at a time, in
// order, while other contacts go ahead. A request that may succeed later waits out its back-off
// without holding a slot; a contact whose request still fails after its last try is parked, and
// the rest of its events are given up in order (the failures file), never sent past the failure.
// At most `inFlight` requests are open at once, each after the rate limiter lets it through, and a
// 429 pauses every contact for Refiner's Retry-After.

import type { Outcome } from "../lib/outcome.ts";
import { backoff } from "../lib/pipeline/backoff.ts";
import type { PlannedRequest } from "../lib/pipeline/plan.ts";

export interface Job<Item> {
  contact: string;
  request: PlannedRequest;
  /** The events this request delivers, in input order. */
  items: Item[];
  tries: number;
}

export interface QueueHooks<Item> {
  /** Sends one request; never rejects. */
  send(job: Job<Item>): Promise<Outcome>;
  /** Called once per job with its final outcome: delivered, rejected, or still failing. */
  settle(job: Job<Item>, outcome: Outcome): void;
  /** Called when a contact is parked, with every event of it not yet settled, in input order. */
  park(contact: string, items: Item[], outcome: Outcome): void;
}

export interface QueueOptions {
  inFlight: number;
  /** Tries per request, the first included. */
  attempts: number;
  /** The first wait before a retry; it doubles each time, and Retry-After can lengthen it. */
  backoffMs: number;
  maxBackoffMs: number;
}

export class ContactQueues<Item> {
  private readonly queues = new Map<string, Job<Item>[]>();
  /** Contacts whose first job may start now, in the order they became ready. */
  private readonly ready: string[] = [];
  private readonly waiting = new Set<ReturnType<typeof setTimeout>>();
  private running = 0;
  private pausedUntil = 0;
  private pauseTimer: ReturnType<typeof setTimeout> | undefined;
  private stopped = false;
  private idle: (() => void)[] = [];
  /** Events in the queues, in flight included. */
  pending = 0;

  constructor(
    private readonly hooks: QueueHooks<Item>,
    private readonly options: QueueOptions,
  ) {}

  add(job: Job<Item>): void {
    const queue = this.queues.get(job.contact);
    this.pending += job.items.length;
    if (queue) {
      queue.push(job);
      return;
    }
    this.queues.set(job.contact, [job]);
    this.ready.push(job.contact);
    this.pump();
  }

  /** Resolves once at most `pending` events are queued (or when stopped). */
  drainTo(pending: number): Promise<void> {
    if (this.pending <= pending || this.stopped) return Promise.resolve();
    return new Promise((resolve) => {
      const check = () => {
        if (this.pending <= pending || this.stopped) resolve();
        else this.idle.push(check);
      };
      this.idle.push(check);
    });
  }

  /** Starts nothing more; resolves when what is in flight has settled, or after `graceMs`. */
  async stop(graceMs: number): Promise<void> {
    this.stopped = true;
    for (const timer of this.waiting) clearTimeout(timer);
    clearTimeout(this.pauseTimer);
    this.notify();
    const deadline = Date.now() + graceMs;
    while (this.running > 0 && Date.now() < deadline) {
      await new Promise((resolve) => setTimeout(resolve, 20));
    }
  }

  private pump(): void {
    if (this.stopped) return;
    const now = Date.now();
    if (now < this.pausedUntil) {
      this.pauseTimer ??= setTimeout(() => {
        this.pauseTimer = undefined;
        this.pump();
      }, this.pausedUntil - now);
      return;
    }
    while (this.running < this.options.inFlight && this.ready.length > 0) {
      const contact = this.ready.shift() as string;
      const job = this.queues.get(contact)?.[0];
      if (job) this.start(job);
    }
  }

  private start(job: Job<Item>): void {
    this.running += 1;
    job.tries += 1;
    this.hooks.send(job).then((outcome) => {
      this.running -= 1;
      // After stop() an answer still settles its events; only a retry is not scheduled.
      this.finish(job, outcome);
      this.notify();
      this.pump();
    });
  }

  private finish(job: Job<Item>, outcome: Outcome): void {
    const queue = this.queues.get(job.contact) as Job<Item>[];
    if (outcome.kind !== "retry") {
      queue.shift();
      this.pending -= job.items.length;
      this.hooks.settle(job, outcome);
      this.next(job.contact, queue);
      return;
    }
    const retryAfterMs = (outcome.retryAfterSeconds ?? 0) * 1000;
    if (outcome.status === 429) {
      this.pausedUntil = Math.max(this.pausedUntil, Date.now() + Math.max(retryAfterMs, 1000));
    }
    if (job.tries >= this.options.attempts) {
      this.queues.delete(job.contact);
      const items = queue.flatMap((queued) => queued.items);
      this.pending -= items.length;
      this.hooks.park(job.contact, items, outcome);
      return;
    }
    if (this.stopped) return;
    const waitMs = backoff(
      job.tries,
      this.options.backoffMs,
      this.options.maxBackoffMs,
      retryAfterMs,
    );
    const timer = setTimeout(() => {
      this.waiting.delete(timer);
      this.ready.push(job.contact);
      this.pump();
    }, waitMs);
    this.waiting.add(timer);
  }

  private next(contact: string, queue: Job<Item>[]): void {
    if (queue.length === 0) this.queues.delete(contact);
    else this.ready.push(contact);
  }

  private notify(): void {
    const waiting = this.idle;
    this.idle = [];
    for (const check of waiting) check();
  }
}
