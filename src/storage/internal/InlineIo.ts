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
 * system) would stall every peer and timer with it. So each inline call is timed, and `slowCallsToPool` calls that
 * took `slowMs` or more within `slowWindowMs` send I/O back to the pool for `backoffMs`; then inline is tried again.
 * One slow call alone is not enough: on a busy machine a thread preempted in the middle of a quick write shows one now
 * and then (a 10 ms call in a third of the 1 GiB downloads here, which then made most of their writes in the pool,
 * ~6 % slower), while a disk that blocks makes every call slow. The worst inline calls can cost the event loop is
 * `slowCallsToPool` such calls per `backoffMs`.
 *
 * And writes that are each quick but slow per byte move to the pool too: a disk that keeps up only at a fraction of
 * the page cache's speed would otherwise take the event loop's time a call at a time. So the inline calls of at least
 * `costlyMinBytes` are summed over windows of `costlyWindowBytes` (slow calls left out: they are the first rule's, and
 * one 14 ms preemption alone costs 1.7 ns per byte of an 8 MiB window); a window that cost more than `costlyNsPerByte`
 * sends I/O to the pool for `costlyBackoffMs`, after which the next window measures again.
 */

export interface Options {
  /** Whether inline I/O is allowed at all (false: always the pool). */
  readonly enabled: boolean
  /** An inline call that took this long (ms) or longer is slow. */
  readonly slowMs: number
  /** This many slow calls within `slowWindowMs` send I/O to the pool. */
  readonly slowCallsToPool: number
  /** See `slowCallsToPool` (ms). */
  readonly slowWindowMs: number
  /** How long (ms) I/O stays in the pool after a slow inline call. */
  readonly backoffMs: number
  /** Inline calls of at least this many bytes are measured for cost per byte (smaller ones: mostly fixed cost). */
  readonly costlyMinBytes: number
  /** Measured bytes per window. */
  readonly costlyWindowBytes: number
  /** A window whose calls took more than this (ns per byte) sends I/O to the pool. */
  readonly costlyNsPerByte: number
  /** How long (ms) I/O stays in the pool after a costly window. */
  readonly costlyBackoffMs: number
  /** Monotonic milliseconds (default `performance.now`). */
  readonly now: () => number
}

export interface InlineIo {
  /** Whether the next call should be made inline. */
  readonly inline: () => boolean
  /** Time now (ms), to time an inline call with. */
  readonly now: () => number
  /** An inline call that began at `started` has returned (or thrown) after writing `bytes`. */
  readonly done: (started: number, bytes: number) => void
  /** Inline calls that were slow so far (each began a back-off). */
  readonly slowCalls: () => number
  /** Windows that were costly so far (each began a back-off). */
  readonly costlyWindows: () => number
}

export const SLOW_MS = 10
export const SLOW_CALLS_TO_POOL = 2
export const SLOW_WINDOW_MS = 1_000
export const BACKOFF_MS = 30_000
export const COSTLY_MIN_BYTES = 16 * 1024
export const COSTLY_WINDOW_BYTES = 8 * 1024 * 1024
/**
 * 5 ns per byte (200 MB/s into the page cache): a disk or file system in trouble, not this VM's page cost. Small
 * inline calls (16 KiB) measured 0.42–1.25 ns per byte per 8 MiB window here, cheap or costly state alike; the pool's
 * 128 KiB calls would pay the costly state in full (FileStorage.WRITE_CHUNK), so it must not send them there. (With
 * 128 KiB inline calls the limit was 1.2: cheap windows 0.25–0.9, costly 1.5–2.4, and the pool was then the cheaper.)
 */
export const COSTLY_NS_PER_BYTE = 5
export const COSTLY_BACKOFF_MS = 5_000

export const make = (options: Partial<Options> = {}): InlineIo => {
  const enabled = options.enabled ?? true
  const slowMs = options.slowMs ?? SLOW_MS
  const slowCallsToPool = Math.max(1, options.slowCallsToPool ?? SLOW_CALLS_TO_POOL)
  const slowWindowMs = options.slowWindowMs ?? SLOW_WINDOW_MS
  const backoffMs = options.backoffMs ?? BACKOFF_MS
  const costlyMinBytes = options.costlyMinBytes ?? COSTLY_MIN_BYTES
  const costlyWindowBytes = options.costlyWindowBytes ?? COSTLY_WINDOW_BYTES
  const costlyNsPerByte = options.costlyNsPerByte ?? COSTLY_NS_PER_BYTE
  const costlyBackoffMs = options.costlyBackoffMs ?? COSTLY_BACKOFF_MS
  const now = options.now ?? (() => performance.now())
  /** Inline again from this time on. */
  let pooledUntil = Number.NEGATIVE_INFINITY
  let slow = 0
  /** When the recent slow calls ended (within `slowWindowMs` of the latest). */
  let recentSlow: Array<number> = []
  let costly = 0
  /** The current window: measured bytes and their milliseconds. */
  let windowBytes = 0
  let windowMs = 0
  return {
    inline: () => enabled && now() >= pooledUntil,
    now,
    done: (started, bytes) => {
      const end = now()
      const ms = end - started
      if (ms >= slowMs) {
        slow++
        recentSlow = recentSlow.filter((t) => end - t < slowWindowMs)
        recentSlow.push(end)
        if (recentSlow.length >= slowCallsToPool) {
          pooledUntil = Math.max(pooledUntil, end + backoffMs)
          recentSlow = []
        }
      }
      // A slow call is the other rule's: one alone (a preemption) would make its whole window look costly.
      if (bytes < costlyMinBytes || ms >= slowMs) return
      windowBytes += bytes
      windowMs += ms
      if (windowBytes < costlyWindowBytes) return
      if ((windowMs * 1e6) / windowBytes > costlyNsPerByte) {
        costly++
        pooledUntil = Math.max(pooledUntil, end + costlyBackoffMs)
      }
      windowBytes = 0
      windowMs = 0
    },
    slowCalls: () => slow,
    costlyWindows: () => costly
  }
}
