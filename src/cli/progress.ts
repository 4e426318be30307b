// A single status line, rewritten in place on a terminal; on a pipe or a
// file only the milestone lines are written, so logs stay short.
import type { Writable } from 'node:stream';

export class Progress {
  readonly #stream: Writable & { isTTY?: boolean; columns?: number };
  readonly #live: boolean;
  #shown = false;

  constructor(stream: Writable & { isTTY?: boolean; columns?: number }) {
    this.#stream = stream;
    this.#live = stream.isTTY === true && process.env.TERM !== 'dumb';
  }

  /** Replaces the status line (terminals only). */
  status(text: string): void {
    if (!this.#live) return;
    const width = Math.max(20, (this.#stream.columns ?? 100) - 1);
    const line = text.length > width ? `${text.slice(0, width - 1)}…` : text;
    this.#stream.write(`\r\x1b[2K${line}`);
    this.#shown = true;
  }

  /** A line that stays (above the status line on a terminal). */
  log(text: string): void {
    this.clear();
    this.#stream.write(`${text}\n`);
  }

  clear(): void {
    if (!this.#shown) return;
    this.#stream.write('\r\x1b[2K');
    this.#shown = false;
  }
}

const BAR_WIDTH = 16;

/** `▕████░░░░▏` for a fraction in [0, 1]. */
export function bar(fraction: number): string {
  const filled = Math.round(Math.min(1, Math.max(0, fraction)) * BAR_WIDTH);
  return `▕${'█'.repeat(filled)}${'░'.repeat(BAR_WIDTH - filled)}▏`;
}

export function seconds(ms: number): string {
  return `${(ms / 1000).toFixed(1)} s`;
}
