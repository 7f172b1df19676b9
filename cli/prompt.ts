// Questions for `refiner-destination secret`: on a terminal the answer is read without echo, as a
// password prompt is (nothing is shown while typing, so neither the screen nor a recording of the
// session holds the key); otherwise each answer is one line of standard input.

import { createInterface } from "node:readline";

/** Asks one question and resolves with the line answered ("" for none). */
export interface Ask {
  (question: string): Promise<string>;
  close(): void;
}

export function askLines(input: NodeJS.ReadableStream, output: NodeJS.WritableStream): Ask {
  const reader = createInterface({ input, terminal: false });
  const lines = reader[Symbol.asyncIterator]();
  const ask = async (question: string) => {
    output.write(question);
    const { value, done } = await lines.next();
    return done ? "" : String(value);
  };
  return Object.assign(ask, { close: () => reader.close() });
}

const ENTER = new Set(["\r", "\n"]);
const ERASE = new Set(["\u007f", "\b"]);
const CTRL_C = "\u0003";
const CTRL_D = "\u0004";

/**
 * Reads answers in raw mode and echoes nothing. Backspace erases, Ctrl-D answers what was typed,
 * Ctrl-C ends the command (130) before anything was written. A pasted answer with more lines
 * answers the next questions too.
 */
export function askTerminal(input: NodeJS.ReadStream, output: NodeJS.WritableStream): Ask {
  let pending = "";
  const ask = (question: string) =>
    new Promise<string>((resolve) => {
      // Echo is off before the question shows, so nothing typed after it can appear.
      input.setRawMode(true);
      output.write(question);
      let answer = "";
      const finish = () => {
        input.off("data", onData);
        input.setRawMode(false);
        input.pause();
        output.write("\n");
        resolve(answer);
      };
      const take = (text: string): boolean => {
        const chars = [...text];
        for (const [at, char] of chars.entries()) {
          if (ENTER.has(char) || (char === CTRL_D && answer === "")) {
            // "\r\n" is one Enter.
            const rest = chars.slice(at + 1).join("");
            pending = char === "\r" && rest.startsWith("\n") ? rest.slice(1) : rest;
            return true;
          }
          if (char === CTRL_C) {
            input.setRawMode(false);
            output.write("\n");
            process.exit(130);
          }
          if (ERASE.has(char)) answer = [...answer].slice(0, -1).join("");
          else if (char >= " ") answer += char;
        }
        pending = "";
        return false;
      };
      const onData = (chunk: Buffer | string) => {
        if (take(String(chunk))) finish();
      };
      if (take(pending)) {
        finish();
        return;
      }
      input.on("data", onData);
      input.resume();
    });
  return Object.assign(ask, { close: () => input.pause() });
}
