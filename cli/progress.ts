// Progress on stderr. On a terminal: one line redrawn in place. Elsewhere (CI logs, pipes): a
// line per stage with the elapsed time, and within a stage at most one line every few seconds,
// so a long prune shows it is alive without flooding the log. `--quiet` silences both.

export type ProgressMode = 'tty' | 'lines' | 'off';

export interface Progress {
  /** A stage began or moved on; `done/total` samples when the stage counts them. */
  update(stage: string, p?: { samplesDone: number; samplesTotal: number }): void;
  /** Clears the terminal line (the last lines-mode line stays). */
  end(): void;
}

/** Seconds between two lines of one stage when stderr is not a terminal. */
export const PROGRESS_LINE_INTERVAL_S = 5;

function seconds(ms: number): string {
  return ms < 10_000 ? `${(ms / 1000).toFixed(1)} s` : `${Math.round(ms / 1000)} s`;
}

export function progressReporter(write: (text: string) => void, mode: ProgressMode, now: () => number = Date.now): Progress {
  const started = now();
  let stage: string | undefined;
  let lastLine = -Infinity;
  let drawn = false;
  return {
    update(next, p) {
      if (mode === 'off') return;
      const t = now();
      const count = p ? ` ${p.samplesDone}/${p.samplesTotal} samples` : '';
      if (mode === 'tty') {
        write(`\r${next}${count} (${seconds(t - started)})\x1b[K`);
        drawn = true;
        return;
      }
      if (next === stage && t - lastLine < PROGRESS_LINE_INTERVAL_S * 1000) return;
      stage = next;
      lastLine = t;
      write(`condense: ${next}${count} (${seconds(t - started)} elapsed)\n`);
    },
    end() {
      if (mode === 'tty' && drawn) write('\r\x1b[K');
      drawn = false;
    },
  };
}
