// Reads Segment events from a file or standard input, streaming: a JSON object, a JSON array of
// events, or newline-delimited JSON (Segment's archives), each optionally gzipped. One event is in
// memory at a time, so a 1 GB export never is.

import { createReadStream } from "node:fs";
import { PassThrough, pipeline, type Readable, Transform } from "node:stream";
import { createGunzip } from "node:zlib";

/** One top-level value of the input: an event, or why it could not be read. */
export type ReadItem = { event: unknown; line: number } | { error: string; line: number };

/** Larger values are reported and skipped: no Segment event comes near it. */
export const MAX_EVENT_BYTES = 1024 * 1024;

export interface Source {
  /** A path, or "-" for standard input. */
  name: string;
  /** Called with the number of (compressed) bytes read so far, for progress. */
  onBytes?: (bytes: number) => void;
}

export async function* readEvents({ name, onBytes }: Source): AsyncGenerator<ReadItem> {
  const raw: Readable = name === "-" ? process.stdin : createReadStream(name);
  const gzipped = await isGzip(raw, name);
  let bytes = 0;
  const counted = new Transform({
    transform(chunk: Buffer, _encoding, done) {
      bytes += chunk.length;
      onBytes?.(bytes);
      done(null, chunk);
    },
  });
  const text = new PassThrough();
  // pipeline() carries a read or gunzip error to `text`, whose iteration then throws it.
  const stages = gzipped ? [raw, counted, createGunzip(), text] : [raw, counted, text];
  pipeline(stages, () => {});
  text.setEncoding("utf8");
  yield* splitValues(text as AsyncIterable<string>);
}

/** `.gz`, or gzip's magic bytes at the start whatever the name. */
async function isGzip(stream: Readable, name: string): Promise<boolean> {
  if (name.endsWith(".gz")) return true;
  const first: Buffer | null = await new Promise((resolve, reject) => {
    const onReadable = () => {
      cleanup();
      resolve(stream.read(2) ?? stream.read());
    };
    const onEnd = () => {
      cleanup();
      resolve(null);
    };
    const onError = (error: Error) => {
      cleanup();
      reject(error);
    };
    const cleanup = () => {
      stream.off("readable", onReadable);
      stream.off("end", onEnd);
      stream.off("error", onError);
    };
    stream.once("readable", onReadable);
    stream.once("end", onEnd);
    stream.once("error", onError);
  });
  if (!first) return false;
  stream.unshift(first);
  return first[0] === 0x1f && first[1] === 0x8b;
}

/**
 * Splits text into its top-level JSON values, tracking only nesting and strings. A top-level array
 * is unwrapped into its elements; objects may follow each other on lines (NDJSON) or span lines.
 */
export async function* splitValues(chunks: AsyncIterable<string>): AsyncGenerator<ReadItem> {
  let parts: string[] = [];
  let size = 0;
  let depth = 0;
  let inString = false;
  let escaped = false;
  let inValue = false;
  let scalar = false; // a top-level number, string, true/false/null
  let startLine = 1;
  let line = 1;
  let first = true; // before the input's first value
  let inArray = false; // inside a top-level array whose elements are the events
  let skipping = false; // after an oversized value, until the next line

  const finish = (text: string): ReadItem => {
    inValue = false;
    parts = [];
    size = 0;
    try {
      return { event: JSON.parse(text), line: startLine };
    } catch {
      return { error: `not valid JSON: ${text.slice(0, 80)}`, line: startLine };
    }
  };

  for await (const chunk of chunks) {
    let start = 0; // where the current value starts within this chunk
    for (let i = 0; i < chunk.length; i++) {
      const char = chunk[i] as string;
      if (char === "\n") line += 1;

      if (skipping) {
        if (char === "\n") skipping = false;
        continue;
      }

      if (!inValue) {
        if (char === " " || char === "\n" || char === "\r" || char === "\t") continue;
        if (inArray && char === ",") continue;
        if (inArray && char === "]") {
          inArray = false;
          continue;
        }
        if (first && char === "[") {
          inArray = true;
          first = false;
          continue;
        }
        first = false;
        inValue = true;
        startLine = line;
        start = i;
        depth = 0;
        scalar = char !== "{" && char !== "[";
        inString = char === '"';
        escaped = false;
        if (!scalar) depth = 1;
        continue;
      }

      if (inString) {
        if (escaped) escaped = false;
        else if (char === "\\") escaped = true;
        else if (char === '"') {
          inString = false;
          if (scalar) {
            yield finish(parts.join("") + chunk.slice(start, i + 1));
          }
        }
        continue;
      }

      if (scalar) {
        if (
          char === " " ||
          char === "\n" ||
          char === "\r" ||
          char === "\t" ||
          char === "," ||
          char === "]"
        ) {
          const item = finish(parts.join("") + chunk.slice(start, i));
          if (char === "]" && inArray) inArray = false;
          yield item;
        }
        continue;
      }

      if (char === '"') inString = true;
      else if (char === "{" || char === "[") depth += 1;
      else if (char === "}" || char === "]") {
        depth -= 1;
        if (depth === 0) yield finish(parts.join("") + chunk.slice(start, i + 1));
      }
    }

    if (inValue) {
      const rest = chunk.slice(start);
      parts.push(rest);
      size += rest.length;
      if (size > MAX_EVENT_BYTES) {
        yield { error: `a value larger than ${MAX_EVENT_BYTES} bytes`, line: startLine };
        inValue = false;
        parts = [];
        size = 0;
        skipping = true;
      }
    }
  }
  if (inValue) {
    const text = parts.join("").trim();
    if (scalar && text) yield finish(text);
    else yield { error: "the input ends in the middle of a value", line: startLine };
  }
}
