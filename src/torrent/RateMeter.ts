/**
 * A rate over the last few seconds from a running total sampled now and then (the torrent samples each peer's
 * byte counters about once a second): bytes/s between the oldest sample inside the window and the newest. Plain
 * mutable data, a handful of samples; no timers of its own.
 */
export interface RateMeter {
  readonly windowMs: number
  readonly times: Array<number>
  readonly totals: Array<number>
}

export const make = (windowMs = 5_000): RateMeter => ({ windowMs, times: [], totals: [] })

/** Records `total` (a count that only grows) at `now` (ms). */
export const sample = (m: RateMeter, now: number, total: number): void => {
  m.times.push(now)
  m.totals.push(total)
  // Keep one sample at or before the window's start, so the rate always spans the whole window once it can.
  while (m.times.length > 2 && m.times[1]! <= now - m.windowMs) {
    m.times.shift()
    m.totals.shift()
  }
}

/** Bytes per second over the samples kept (0 with fewer than two). */
export const rate = (m: RateMeter): number => {
  const n = m.times.length
  if (n < 2) return 0
  const dt = m.times[n - 1]! - m.times[0]!
  return dt > 0 ? Math.round(((m.totals[n - 1]! - m.totals[0]!) * 1000) / dt) : 0
}
