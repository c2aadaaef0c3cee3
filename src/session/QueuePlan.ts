/**
 * Which torrents of a session run: Transmission's and qBittorrent's queue model, as a pure function.
 *
 * Every torrent has one position in one order (`queuePosition`, 0 first). Downloads (incomplete) and seeds
 * (complete) have separate limits: the first `maxDownloads` downloads in queue order run, and the first `maxSeeds`
 * seeds; torrents started "now" (`forced`) run whatever the limits and do not take a slot from the others. Paused,
 * finished (seed goal reached) and failed torrents never run and take no slot. Stable: the same input gives the same
 * plan, so re-planning on every change never starts and stops a torrent for nothing.
 */

export interface Candidate {
  readonly id: number
  readonly queuePosition: number
  readonly complete: boolean
  /** Paused by the user, finished, or failed: not to run. */
  readonly stopped: boolean
  /** Started past the queue's limits. */
  readonly forced: boolean
}

export interface Limits {
  readonly maxDownloads: number
  readonly maxSeeds: number
}

/** The ids that should be running. */
export const plan = (candidates: ReadonlyArray<Candidate>, limits: Limits): ReadonlySet<number> => {
  const run = new Set<number>()
  const ordered = [...candidates].sort((a, b) => a.queuePosition - b.queuePosition || a.id - b.id)
  let downloads = 0
  let seeds = 0
  for (const c of ordered) {
    if (c.stopped) continue
    if (c.forced) {
      run.add(c.id)
      continue
    }
    if (c.complete) {
      if (seeds < limits.maxSeeds) {
        seeds++
        run.add(c.id)
      }
    } else if (downloads < limits.maxDownloads) {
      downloads++
      run.add(c.id)
    }
  }
  return run
}

/**
 * The queue after moving `id` ("top", "up", "down", "bottom"), as positions 0..n-1 keyed by id; the others keep
 * their relative order.
 */
export const move = (
  order: ReadonlyArray<{ readonly id: number; readonly queuePosition: number }>,
  id: number,
  to: "top" | "up" | "down" | "bottom"
): ReadonlyMap<number, number> => {
  const ids = [...order].sort((a, b) => a.queuePosition - b.queuePosition || a.id - b.id).map((c) => c.id)
  const i = ids.indexOf(id)
  if (i >= 0) {
    ids.splice(i, 1)
    const j = to === "top" ? 0 : to === "bottom" ? ids.length : to === "up" ? Math.max(0, i - 1) : Math.min(ids.length, i + 1)
    ids.splice(j, 0, id)
  }
  return new Map(ids.map((x, k) => [x, k]))
}
