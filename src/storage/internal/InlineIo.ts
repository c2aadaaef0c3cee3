/**
 * When FileStorage makes a piece's writes synchronously on the calling (event-loop) thread, and when through libuv's
 * thread pool. Plain state, no Effect: it is consulted per system call.
 *
 * Inline is the default: a write that lands in the page cache takes ~30 µs per 128 KiB, less than a trip through
 * the pool costs (a pool thread woken per call, its completion handed back through the event loop, the data copied on
 * another core). Downloading 1 GiB here, inline writes took 0.86–0.90 × the wall time and ~0.9 × the CPU of pooled
 * ones (docs/PERFORMANCE.md, issue 16). Transmission and aria2 do all their disk I/O on their event loop. (Reads stay
 * in the pool: inline, they made seeding slower.)
 *
 * But a call that blocks (a disk that cannot keep up: the kernel throttles the writer of dirty pages; a network file
 * system) would stall every peer and timer with it. So each
 * inline call is timed, and one that took `slowMs` or more sends I/O back to the pool for `backoffMs`; then inline
 * is tried again. The worst an inline call can cost the event loop is one such call per `backoffMs`.
 */

export interface Options {
  /** Whether inline I/O is allowed at all (false: always the pool). */
  readonly enabled: boolean
  /** An inline call that took this long (ms) or longer sends I/O to the pool. */
  readonly slowMs: number
  /** How long (ms) I/O stays in the pool after a slow inline call. */
  readonly backoffMs: number
  /** Monotonic milliseconds (default `performance.now`). */
  readonly now: () => number
}

export interface InlineIo {
  /** Whether the next call should be made inline. */
  readonly inline: () => boolean
  /** Time now (ms), to time an inline call with. */
  readonly now: () => number
  /** An inline call that began at `started` has returned (or thrown). */
  readonly done: (started: number) => void
  /** Inline calls that were slow so far (each began a back-off). */
  readonly slowCalls: () => number
}

export const SLOW_MS = 10
export const BACKOFF_MS = 30_000

export const make = (options: Partial<Options> = {}): InlineIo => {
  const enabled = options.enabled ?? true
  const slowMs = options.slowMs ?? SLOW_MS
  const backoffMs = options.backoffMs ?? BACKOFF_MS
  const now = options.now ?? (() => performance.now())
  /** Inline again from this time on. */
  let pooledUntil = Number.NEGATIVE_INFINITY
  let slow = 0
  return {
    inline: () => enabled && now() >= pooledUntil,
    now,
    done: (started) => {
      const end = now()
      if (end - started >= slowMs) {
        slow++
        pooledUntil = end + backoffMs
      }
    },
    slowCalls: () => slow
  }
}
