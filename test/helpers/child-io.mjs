// What the child processes of the tests share: one JSON line per event on
// stdout, and commands from the parent as lines on stdin.

/** Prints `{ event, ...fields }` as one JSON line (pipes are synchronous on Linux: nothing is lost at exit). */
export const say = (event, fields = {}) => process.stdout.write(`${JSON.stringify({ event, ...fields })}\n`);

/** Calls `onLine` with each line the parent writes; stdin does not keep the process alive. */
export function onStdinLines(onLine) {
  let text = '';
  process.stdin.setEncoding('utf8').on('data', (chunk) => {
    text += chunk;
    let newline;
    while ((newline = text.indexOf('\n')) >= 0) {
      const line = text.slice(0, newline);
      text = text.slice(newline + 1);
      onLine(line);
    }
  });
  process.stdin.unref();
}
