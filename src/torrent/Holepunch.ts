/**
 * BEP 55 hole punching: the policy of one torrent's three roles, as plain synchronous state with the time passed
 * in (no timers, no I/O: Extensions.ts sends and receives the messages, Swarm.ts dials).
 *
 * - **Relay**: a connected peer asks us (`rendezvous`) to introduce it to another connected peer. Each peer may ask
 *   at most `relayPerMinute` times a minute (a sliding minute); further requests are ignored, unanswered (a relay
 *   is a reflector: without a bound one peer could make us send to every other without end).
 * - **Initiator**: a peer that gave us an address through PEX with the holepunch flag (BEP 11 0x08) is its
 *   *introducer* (as libtorrent's `was_introduced_by`). When a dial of that address fails, we ask one of its
 *   introducers that is still connected and speaks ut_holepunch to relay: at most `maxAttempts` rendezvous per
 *   address, `retryAfterMs` apart (the swarm's own reconnect backoff decides when dials happen at all).
 * - **Target** (and initiator, when the relay answers): a `connect` names an address to dial over uTP at once.
 *   A connect from the relay we asked about that address (its answer still awaited) is always followed; others (we are the target) at most
 *   `connectsPerMinute` a minute per relay, so a relay cannot make us dial the world.
 *
 * Memory is bounded: at most `maxTargets` introduced addresses (the oldest forgotten first), and a relay's state
 * goes when it disconnects (`forget`: its rate windows, its introductions, and the rendezvous awaiting its answer).
 */
import type { PeerKey } from "../peer/TorrentHandle.ts"
import * as UtPex from "../wire/UtPex.ts"

export interface Config {
  /** Rendezvous requests one peer may make of us per minute; more are ignored. */
  readonly relayPerMinute: number
  /** Rendezvous we send for one address before giving it up. */
  readonly maxAttempts: number
  /** Least time between two rendezvous for one address, ms. */
  readonly retryAfterMs: number
  /** Connects one relay may make us follow per minute for addresses we did not ask about. */
  readonly connectsPerMinute: number
  /** Addresses with introducers remembered at most. */
  readonly maxTargets: number
}

export const defaults: Config = {
  relayPerMinute: 20,
  maxAttempts: 3,
  retryAfterMs: 10_000,
  connectsPerMinute: 20,
  maxTargets: 1000
}

const MINUTE = 60_000

interface Target {
  readonly endpoint: UtPex.Endpoint
  /** Peers that told us about it with the holepunch flag, oldest first. */
  readonly introducers: Array<PeerKey>
  attempts: number
  lastAttemptAt: number | undefined
  /** The relay whose answer to our rendezvous is awaited (cleared by its connect or error, or when it leaves). */
  askedVia: PeerKey | undefined
}

export interface Stats {
  /** Rendezvous we relayed (connect sent to both), or answered with an error. */
  readonly relayed: number
  readonly relayErrors: number
  /** Rendezvous ignored by the rate limit. */
  readonly relayLimited: number
  /** Rendezvous we sent as the initiator. */
  readonly rendezvousSent: number
  /** Connects followed (dials started), and ignored (over the limit). */
  readonly connectsFollowed: number
  readonly connectsIgnored: number
  /** Errors relays answered us with. */
  readonly errorsReceived: number
  /** State held now: addresses remembered (introduced, or a rendezvous out), and peers' rate-limit windows. */
  readonly targets: number
  readonly peerWindows: number
}

export interface Holepunch {
  /** Relay: may `from` ask for a rendezvous now? Counts the request. */
  readonly allowRendezvous: (from: PeerKey, now: number) => boolean
  /** Relay: the outcome of an allowed request (for stats). */
  readonly relayed: (ok: boolean) => void
  /** Initiator: `from` sent these peers through PEX; those flagged as supporting ut_holepunch remember it. */
  readonly introduced: (from: PeerKey, peers: ReadonlyArray<UtPex.PexPeer>) => void
  /**
   * Initiator: a dial of `target` failed. The relay to send a rendezvous through (counted as an attempt), or
   * `undefined` (no usable introducer, too soon, or attempts used up). `usable` says whether a peer is connected
   * and speaks ut_holepunch.
   */
  readonly rendezvousVia: (
    target: UtPex.Endpoint,
    now: number,
    usable: (relay: PeerKey) => boolean
  ) => PeerKey | undefined
  /** A relay's `connect` for `target`: dial it now (true), or ignore it. */
  readonly onConnect: (from: PeerKey, target: UtPex.Endpoint, now: number) => boolean
  /** A relay's `error` for `target` (the rendezvous is over). */
  readonly onError: (from: PeerKey, target: UtPex.Endpoint) => void
  /** We dialled `target` because a relay said so (its connection tells nothing of its reachability). */
  readonly punched: (target: UtPex.Endpoint) => boolean
  /** A peer disconnected: it introduces nobody any more and its limits reset. */
  readonly forget: (peer: PeerKey) => void
  readonly stats: () => Stats
}

/** Keeps the times within the last minute of a sliding window, and says whether one more fits under `limit`. */
const take = (window: Map<PeerKey, Array<number>>, key: PeerKey, now: number, limit: number): boolean => {
  const times = (window.get(key) ?? []).filter((t) => now - t < MINUTE)
  const ok = times.length < limit
  if (ok) times.push(now)
  window.set(key, times)
  return ok
}

export const make = (config: Partial<Config> = {}): Holepunch => {
  const c = { ...defaults, ...config }
  const targets = new Map<string, Target>()
  const relayWindow = new Map<PeerKey, Array<number>>()
  const connectWindow = new Map<PeerKey, Array<number>>()
  /** Addresses dialled because of a connect (bounded like the targets). */
  const punchedSet = new Set<string>()
  const stats = {
    relayed: 0,
    relayErrors: 0,
    relayLimited: 0,
    rendezvousSent: 0,
    connectsFollowed: 0,
    connectsIgnored: 0,
    errorsReceived: 0
  }

  return {
    allowRendezvous: (from, now) => {
      const ok = take(relayWindow, from, now, c.relayPerMinute)
      if (!ok) stats.relayLimited++
      return ok
    },
    relayed: (ok) => void (ok ? stats.relayed++ : stats.relayErrors++),
    introduced: (from, peers) => {
      for (const p of peers) {
        if ((p.flags & UtPex.Flags.Holepunch) === 0) continue
        const k = UtPex.keyOf(p)
        if (k === undefined) continue
        let t = targets.get(k)
        if (t === undefined) {
          if (targets.size >= c.maxTargets) targets.delete(targets.keys().next().value!)
          t = { endpoint: { ip: p.ip, port: p.port }, introducers: [], attempts: 0, lastAttemptAt: undefined, askedVia: undefined }
          targets.set(k, t)
        }
        if (!t.introducers.includes(from)) t.introducers.push(from)
      }
    },
    rendezvousVia: (target, now, usable) => {
      const k = UtPex.keyOf(target)
      const t = k === undefined ? undefined : targets.get(k)
      if (t === undefined || t.attempts >= c.maxAttempts) return undefined
      if (t.lastAttemptAt !== undefined && now - t.lastAttemptAt < c.retryAfterMs) return undefined
      // Each attempt goes through the next usable introducer (a relay that failed once gets the next turn last).
      const relay = t.introducers.find(usable)
      if (relay === undefined) return undefined
      t.introducers.splice(t.introducers.indexOf(relay), 1)
      t.introducers.push(relay)
      t.attempts++
      t.lastAttemptAt = now
      t.askedVia = relay
      stats.rendezvousSent++
      return relay
    },
    onConnect: (from, target, now) => {
      const k = UtPex.keyOf(target)
      if (k === undefined) return false
      const t = targets.get(k)
      // Only the relay we asked answers for it; a connect from any other is unsolicited (limited).
      const asked = t !== undefined && t.askedVia === from
      if (asked) t.askedVia = undefined
      const follow = asked || take(connectWindow, from, now, c.connectsPerMinute)
      if (!follow) {
        stats.connectsIgnored++
        return false
      }
      if (punchedSet.size >= c.maxTargets) punchedSet.delete(punchedSet.values().next().value!)
      punchedSet.add(k)
      stats.connectsFollowed++
      return true
    },
    onError: (from, target) => {
      stats.errorsReceived++
      const k = UtPex.keyOf(target)
      const t = k === undefined ? undefined : targets.get(k)
      if (t !== undefined && t.askedVia === from) t.askedVia = undefined
    },
    punched: (target) => {
      const k = UtPex.keyOf(target)
      return k !== undefined && punchedSet.has(k)
    },
    forget: (peer) => {
      relayWindow.delete(peer)
      connectWindow.delete(peer)
      for (const [k, t] of targets) {
        const i = t.introducers.indexOf(peer)
        if (i >= 0) t.introducers.splice(i, 1)
        // Its answer can no longer come: without this, an address asked of a relay that then left stayed for good.
        if (t.askedVia === peer) t.askedVia = undefined
        if (t.introducers.length === 0 && t.askedVia === undefined) targets.delete(k)
      }
    },
    stats: () => ({ ...stats, targets: targets.size, peerWindows: relayWindow.size + connectWindow.size })
  }
}
