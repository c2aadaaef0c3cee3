/**
 * A connection cap shared by several torrents (a session's "peer connections for all torrents together"), on top
 * of each torrent's own `maxPeers`. Plain synchronous counters: the Swarm takes a slot before it dials or accepts
 * a peer and gives it back when that session ends.
 *
 * When a slot frees (or the cap is raised), every torrent that was refused one since is told (`onRoom`), so its
 * dialer looks at its queue again; the first to dial gets the slot. Lowering the cap closes nothing: no new
 * connection is made until fewer than the new cap are in use.
 */
export interface ConnectionBudget {
  /** Takes a slot; false (nothing taken) when all are in use. */
  readonly tryAcquire: () => boolean
  /** Gives a slot back. */
  readonly release: () => void
  /** Changes the cap (at least 0) at once. */
  readonly setMax: (max: number) => void
  readonly max: () => number
  readonly inUse: () => number
  /** `wake` runs whenever a slot may be free again; returns the unsubscription. */
  readonly onRoom: (wake: () => void) => () => void
}

export const make = (max: number): ConnectionBudget => {
  let cap = Math.max(0, Math.floor(max))
  let used = 0
  const waiters = new Set<() => void>()
  // Someone was refused a slot since the waiters were last told. Without it every release would wake every
  // torrent's dialer (a session of 200 torrents with connections churning: 200 fiber wake-ups per closed connection).
  let refused = false
  const room = () => {
    if (!refused || used >= cap) return
    refused = false
    for (const w of [...waiters]) w()
  }
  return {
    tryAcquire: () => {
      if (used >= cap) {
        refused = true
        return false
      }
      used++
      return true
    },
    release: () => {
      if (used > 0) used--
      room()
    },
    setMax: (n) => {
      cap = Math.max(0, Math.floor(n))
      room()
    },
    max: () => cap,
    inUse: () => used,
    onRoom: (wake) => {
      waiters.add(wake)
      return () => void waiters.delete(wake)
    }
  }
}
