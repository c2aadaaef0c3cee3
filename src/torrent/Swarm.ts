/**
 * The peers of one torrent (or of one metadata fetch): candidates, dialing, reconnect backoff, bans, inbound
 * accept, and the sources that feed the candidates — tracker announces, given peers (`--peer`, magnet `x.pe`), the
 * DHT and PEX (`add` from the extension's `onPeers`).
 *
 * - Sessions run in a `FiberMap` keyed by address, at most `maxPeers` (changeable at run time: lowering it closes
 *   nobody, it only stops new connections), fed from a queue of candidates by one dialer fiber; with a
 *   `ConnectionBudget` every connection also holds a slot of the cap shared by the session's torrents. Inbound
 *   peers count against the same limits.
 * - A banned peer, one with another info-hash, a protocol violator or ourselves is never dialled again. Any other
 *   peer whose session ends is retried after a backoff that grows with each failed attempt and restarts once a
 *   handshake succeeds: a peer never connected in this run follows `reconnect` and is then given up (a source
 *   handing it out again starts afresh, unless `retryGivenUp` is false); a peer that did connect once follows
 *   `reconnectKnown`; while `seeding()`, a handshake does not restart it (seeds drop seeds at once: without that
 *   they were redialled every second). With `restartBackoffOnConnect: false` one schedule covers a peer's whole run (a metadata
 *   fetch dials each peer at most three times). With `EFFECT_TORRENT_LOOPBACK_ONLY` non-loopback peers are refused.
 * - Misbehaviour is logged once per peer address with the address as the `peer` annotation: bans (protocol
 *   violations, another info-hash, data failing hash checks) as warnings; stalling (handshake, introduction or
 *   request deadlines) and a peer answering with our own peer id as info. Ordinary session ends and repeats are
 *   debug lines. An inbound peer's port is ephemeral, so its misbehaviour is logged once per host and reason; it
 *   is not banned by address.
 * - One session per remote address: an inbound connection from an address we are dialling (uTP's simultaneous open
 *   in a hole punch: the SYNs cross, and a uTP peer's source port is its listening port) interrupts the dial, or is
 *   refused when that dial already connected; nothing is dialled while an inbound session from its address runs.
 *   (Two sessions under one peer key shared the torrent's per-peer state: the first to end took the other's along —
 *   seen as an upload that stopped mid-torrent.)
 * - `open()` says whether new connections are wanted at all (a torrent that finished without seeding stops
 *   dialing, accepting and retrying).
 * - Each candidate remembers which sources named it (PeerSource.ts: the first, and all as flags) for the peer list;
 *   a retry after a backoff is not a new naming.
 */
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as FiberMap from "effect/FiberMap"
import * as FiberSet from "effect/FiberSet"
import * as Queue from "effect/Queue"
import * as Schedule from "effect/Schedule"
import type * as Scope from "effect/Scope"
import * as Stream from "effect/Stream"
import * as Bytes from "../core/Bytes.ts"
import type { InfoHashV1 } from "../core/InfoHash.ts"
import type * as DhtNode from "../dht/Node.ts"
import * as Destination from "../net/Destination.ts"
import type * as Tcp from "../net/Tcp.ts"
import type { PeerError } from "../peer/PeerError.ts"
import * as PeerSession from "../peer/PeerSession.ts"
import type * as PeerState from "../peer/PeerState.ts"
import type { PeerInfo, PeerKey, TorrentHandle } from "../peer/TorrentHandle.ts"
import * as Announcer from "../tracker/Announcer.ts"
import type { Tracker } from "../tracker/Tracker.ts"
import type * as ConnectionBudget from "./ConnectionBudget.ts"
import * as PeerSource from "./PeerSource.ts"

export interface Options {
  /** What every session talks to. */
  readonly handle: TorrentHandle
  /** Connected or dialing peers at most (at least 1). */
  readonly maxPeers: number
  readonly peerConfig?: Partial<PeerState.PeerConfig> | undefined
  readonly dial?: PeerSession.ConnectOptions["dial"]
  readonly encryption?: PeerSession.ConnectOptions["encryption"]
  /** Waits between reconnects of a peer never connected; given up when the schedule ends. */
  readonly reconnect: Schedule.Schedule<unknown>
  /** Waits between reconnects of a peer that did connect. */
  readonly reconnectKnown: Schedule.Schedule<unknown>
  /** A handshake restarts the backoff (default true). */
  readonly restartBackoffOnConnect?: boolean | undefined
  /** A given-up peer handed out again is dialled afresh (default true). */
  readonly retryGivenUp?: boolean | undefined
  /** A cap shared with other torrents. */
  readonly budget?: ConnectionBudget.ConnectionBudget | undefined
  /** New connections (dial, accept, retry) only while this holds (default: always). */
  readonly open?: (() => boolean) | undefined
  /**
   * We have everything wanted (seeding): a handshake then no longer restarts a peer's backoff, so a peer that keeps
   * dropping us — another seed, which has nothing to gain from us — is redialled ever later (up to a minute
   * apart) rather than every second. Default: never.
   */
  readonly seeding?: (() => boolean) | undefined
  /** Closes a connected peer's session (the owner of the sessions' controls does it). */
  readonly close: (peer: PeerKey, why: string) => void
  /** A peer was banned (already logged); e.g. publish an event. */
  readonly onBanned?: ((addr: string, reason: string) => void) | undefined
  /** A dial failed before any handshake (refused, unreachable, no answer): e.g. try a hole punch (BEP 55). */
  readonly onDialFailed?: ((host: string, port: number) => void) | undefined
  /**
   * A hybrid's truncated v2 info-hash (BEP 52), announced beside the v1 one: peers found only under it (its
   * announces and DHT lookups) are dialled with it, since a peer that knows only the v2 hash (after a `btmh`
   * magnet) refuses the v1 one.
   */
  readonly v2Swarm?: InfoHashV1 | undefined
}

export interface DhtOptions {
  readonly infoHash: InfoHashV1
  /** Between lookups, asked before each wait. */
  readonly interval: () => Duration.DurationInput
  /** Announce this port to the DHT after each lookup (our listening port). */
  readonly announcePort?: number | undefined
}

export interface Swarm {
  /** A candidate address from `source`; dialled when there is room (nothing for a banned or busy one). */
  readonly add: (host: string, port: number, source: PeerSource.PeerSource) => void
  /** The sources that named the candidate `peer` (a `host:port` as dialled); undefined for one never named. */
  readonly origin: (peer: PeerKey) => PeerSource.Origin | undefined
  /**
   * Dial `host:port` now, ahead of the queue and of its reconnect backoff (a BEP 55 `connect`: the other side dials
   * us at the same moment; its source is "pex", as libtorrent files it). Nothing for a banned peer or one already
   * dialling or connected.
   */
  readonly punch: (host: string, port: number) => void
  /** Bans `addr` (never dialled again), closes its session, logs and reports it once. */
  readonly ban: (addr: string, reason: string) => Effect.Effect<void>
  readonly isBanned: (addr: string) => boolean
  /** Marks `addr` banned, nothing more (the caller closes the session and says why). */
  readonly markBanned: (addr: string) => void
  /** A session's handshake checked out (its backoff restarts; the no-peers rule stops applying). */
  readonly connected: (peer: PeerKey) => void
  /** Opens the session map and starts dialing, in the current scope (closing it ends every session). */
  readonly start: Effect.Effect<void, never, Scope.Scope>
  /**
   * Runs an inbound session on `connection` (`prefix`: the handshake bytes already read); `release` runs when it
   * ends. False (and nothing run) before `start`, when not `open`, or at a limit.
   */
  readonly accept: (
    connection: Tcp.Connection,
    prefix: Uint8Array,
    release: Effect.Effect<void>,
    encryption?: PeerInfo["encryption"]
  ) => Effect.Effect<boolean>
  /** Runs the announce stream, adding its peers; `onBatch` sees each answer. */
  readonly announce: (
    options: Announcer.Options,
    onBatch?: (batch: Announcer.PeerBatch) => void
  ) => Effect.Effect<void, never, Tracker>
  /** DHT lookups (and announces) for ever, and pings of the peers' DHT ports (`pingDht`). */
  readonly dht: (node: DhtNode.Node, options: DhtOptions) => Effect.Effect<never>
  /** A peer's BEP 5 `port`: ping it into the DHT's table (bounded queue; dropped when full). */
  readonly pingDht: (host: string, port: number) => void
  readonly setMaxPeers: (max: number) => void
  /** Look at the queue again (e.g. `open()` became true). */
  readonly wake: () => void
  readonly maxPeers: () => number
  /** Sessions dialing or connected. */
  readonly active: () => number
  /** Some peer completed a handshake in this run. */
  readonly everConnected: () => boolean
  /** Some tracker answered an announce (even without peers). */
  readonly trackerAnswered: () => boolean
  /** How the latest session ended ("addr: message"). */
  readonly lastAttempt: () => string | undefined
  /** Every candidate address not banned, with the first source that named it. */
  readonly addresses: () => ReadonlyArray<Tcp.Address & { readonly source: PeerSource.PeerSource }>
}

interface Candidate {
  readonly host: string
  readonly port: number
  readonly addr: string
  origin: PeerSource.Origin
  queued: boolean
  active: boolean
  banned: boolean
  /** The current session completed its handshake. */
  connected: boolean
  /** Some session with this peer completed its handshake in this run. */
  known: boolean
  /** Waiting for the backoff before the next attempt. */
  waiting: boolean
  /** Backoff waits begun; a wait acts only if it is the latest (`punch` dials during one, and may begin another). */
  waits: number
  /** Its schedule ended: not dialled again unless handed out again (and `retryGivenUp`). */
  givenUp: boolean
  /** The backoff since the last successful handshake (its delays grow with each failed attempt). */
  backoff: Schedule.ScheduleDriver<unknown, unknown> | undefined
  /** Named only in the hybrid's v2 swarm (`v2Swarm`): dialled with that hash. */
  v2Only: boolean
}

export const formatAddress = (host: string, port: number): string =>
  host.includes(":") ? `[${host}]:${port}` : `${host}:${port}`

/** Reasons after which a peer is never dialled again. */
export const neverAgain: ReadonlySet<PeerError["reason"]> = new Set<PeerError["reason"]>([
  "wrong-info-hash",
  "self-connection",
  "protocol"
])
/** Session ends that say the peer stalls us on purpose or by neglect (logged once per peer, then retried). */
export const stalling: ReadonlySet<PeerError["reason"]> = new Set<PeerError["reason"]>([
  "handshake-timeout",
  "introduction-timeout",
  "choked-timeout",
  "snubbed"
])

export const make = (options: Options): Effect.Effect<Swarm, never, Scope.Scope> =>
  Effect.gen(function*() {
    const open = options.open ?? (() => true)
    const seeding = options.seeding ?? (() => false)
    const budget = options.budget
    const restart = options.restartBackoffOnConnect !== false
    const retryGivenUp = options.retryGivenUp !== false
    const candidates = new Map<string, Candidate>()
    /** Remote addresses of the inbound sessions running. */
    const inboundFrom = new Set<string>()
    const queue: Array<Candidate> = []
    const wake = yield* Queue.sliding<void>(1)
    const dhtPings = yield* Queue.dropping<{ readonly host: string; readonly port: number }>(64)
    const retrySet = yield* FiberSet.make<void, never>()
    let maxPeers = Math.max(1, options.maxPeers)
    let active = 0
    let sessions: FiberMap.FiberMap<string, void, never> | undefined
    let everConnected = false
    let trackerAnswered = false
    let lastAttempt: string | undefined
    /** Peers whose stalling was logged already. */
    const loggedStall = new Set<string>()
    const loggedInbound = new Set<string>()
    const loopbackOnly = Destination.loopbackOnly()

    if (budget !== undefined) {
      const off = budget.onRoom(() => void wake.unsafeOffer(undefined))
      yield* Effect.addFinalizer(() => Effect.sync(off))
    }

    const add = (host: string, port: number, source: PeerSource.PeerSource, swarm?: Uint8Array) => {
      if (!Number.isInteger(port) || port <= 0 || port > 65535) return
      if (loopbackOnly && !Destination.isLoopbackHost(host)) return
      const addr = formatAddress(host, port)
      const v2Only = options.v2Swarm !== undefined && swarm !== undefined && Bytes.equals(swarm, options.v2Swarm)
      let c = candidates.get(addr)
      if (c === undefined) {
        c = {
          host,
          port,
          addr,
          origin: PeerSource.note(undefined, source),
          queued: false,
          active: false,
          banned: false,
          connected: false,
          known: false,
          waiting: false,
          waits: 0,
          givenUp: false,
          backoff: undefined,
          v2Only
        }
        candidates.set(addr, c)
      } else {
        c.origin = PeerSource.note(c.origin, source)
        if (!v2Only) c.v2Only = false
      }
      enqueue(c)
    }
    const enqueue = (c: Candidate) => {
      if (c.banned || c.queued || c.active || c.waiting || (c.givenUp && !retryGivenUp)) return
      c.givenUp = false
      c.queued = true
      queue.push(c)
      wake.unsafeOffer(undefined)
    }

    const ban = (addr: string, reason: string) =>
      Effect.gen(function*() {
        const c = candidates.get(addr)
        if (c?.banned === true) return
        if (c !== undefined) c.banned = true
        options.close(addr, `banned: ${reason}`)
        options.onBanned?.(addr, reason)
        yield* Effect.logWarning(`peer banned: ${reason}`).pipe(Effect.annotateLogs({ peer: addr }))
      })

    const afterSession = (c: Candidate, error: PeerError) =>
      Effect.gen(function*() {
        const wasConnected = c.connected
        c.connected = false
        lastAttempt = `${c.addr}: ${error.message}`
        if (c.banned || !open()) return
        if (!wasConnected && (error.reason === "connect-failed" || error.reason === "connect-timeout")) {
          options.onDialFailed?.(c.host, c.port)
        }
        if (neverAgain.has(error.reason)) {
          if (error.reason === "self-connection") {
            c.banned = true
            return yield* Effect.logInfo(`peer is ourselves (it sent our own peer id): not dialled again`).pipe(
              Effect.annotateLogs({ peer: c.addr })
            )
          }
          return yield* ban(c.addr, `${error.reason}: ${error.detail}`)
        }
        const log = stalling.has(error.reason) && !loggedStall.has(c.addr)
          ? Effect.logInfo(`peer stalls: ${error.reason}: ${error.detail}`)
          : Effect.logDebug(error.message)
        if (stalling.has(error.reason)) loggedStall.add(c.addr)
        yield* log.pipe(Effect.annotateLogs({ peer: c.addr }))
        // A handshake since the last failure restarts the backoff (on the known-peer schedule from then on) —
        // unless we are seeding: then the backoff keeps growing (seed-to-seed connections end at once).
        if ((restart && wasConnected && !seeding()) || c.backoff === undefined) {
          c.backoff = yield* Schedule.driver(c.known ? options.reconnectKnown : options.reconnect)
        }
        const driver = c.backoff
        c.waiting = true
        const wait = ++c.waits
        yield* FiberSet.run(
          retrySet,
          driver.next(undefined).pipe(
            Effect.matchEffect({
              onFailure: () =>
                Effect.sync(() => {
                  if (c.waits !== wait) return
                  // Schedule over: give the peer up (a source handing it out again starts afresh).
                  c.waiting = false
                  c.backoff = undefined
                  c.givenUp = true
                }),
              onSuccess: () =>
                Effect.sync(() => {
                  if (c.waits !== wait) return
                  c.waiting = false
                  enqueue(c)
                })
            })
          )
        )
      })

    /** The handle of sessions dialled in the hybrid's v2 swarm: its truncated v2 hash first, the v1 one accepted. */
    const v2Handle: TorrentHandle | undefined = options.v2Swarm === undefined
      ? undefined
      : { ...options.handle, infoHash: options.v2Swarm, v2InfoHash: options.handle.infoHash }
    const session = (c: Candidate) =>
      PeerSession.connect({
        host: c.host,
        port: c.port,
        handle: c.v2Only && v2Handle !== undefined ? v2Handle : options.handle,
        config: options.peerConfig,
        dial: options.dial,
        encryption: options.encryption
      }).pipe(
        Effect.catchAll((error) => afterSession(c, error)),
        Effect.ensuring(Effect.sync(() => {
          c.active = false
          active--
          budget?.release()
          wake.unsafeOffer(undefined)
        }))
      )

    const dialer = Queue.take(wake).pipe(
      Effect.andThen(Effect.gen(function*() {
        const map = sessions // set before the dialer starts
        while (map !== undefined && active < maxPeers && queue.length > 0 && open()) {
          const c = queue[0]!
          if (c.banned || inboundFrom.has(c.addr)) {
            // (an inbound session from this very address is running: see `accept`)
            queue.shift()
            c.queued = false
            continue
          }
          if (budget !== undefined && !budget.tryAcquire()) break // woken by onRoom when a slot frees
          queue.shift()
          c.queued = false
          c.active = true
          active++
          yield* FiberMap.run(map, c.addr, session(c))
        }
      })),
      Effect.forever
    )

    const start = Effect.gen(function*() {
      sessions = yield* FiberMap.make<string, void, never>()
      yield* Effect.addFinalizer(() => Effect.sync(() => void (sessions = undefined)))
      yield* Effect.forkScoped(dialer)
      wake.unsafeOffer(undefined)
    })

    // (Our own peer id and other info-hashes never get here: the listener refuses them before routing.)
    const inboundEnded = (connection: Tcp.Connection, error: PeerError) => {
      const key = `${connection.remote.host}|${error.reason}`
      const loud = (neverAgain.has(error.reason) || stalling.has(error.reason)) && !loggedInbound.has(key)
      if (loud) {
        if (loggedInbound.size >= 1024) loggedInbound.clear()
        loggedInbound.add(key)
      }
      const line = !loud
        ? Effect.logDebug(`inbound ${error.message}`)
        : stalling.has(error.reason)
        ? Effect.logInfo(`inbound peer stalls: ${error.reason}: ${error.detail}`)
        : Effect.logWarning(`inbound peer closed: ${error.reason}: ${error.detail}`)
      return line.pipe(Effect.annotateLogs({ peer: connection.remoteAddress }))
    }
    const accept = (
      connection: Tcp.Connection,
      prefix: Uint8Array,
      release: Effect.Effect<void>,
      encryption?: PeerInfo["encryption"]
    ) =>
      Effect.suspend(() => {
        const map = sessions
        if (map === undefined || !open()) return Effect.succeed(false)
        // uTP's simultaneous open (a hole punch): the peer's SYN and ours cross, so its connection comes from the very
        // address we dial. Two sessions under one peer key would share the torrent's per-peer state (the first to
        // end would take the other's with it), so one stays: a dial still in progress gives way, a connected one not.
        const from = connection.remoteAddress
        const dialling = candidates.get(from)
        if (dialling?.active === true && dialling.connected) return Effect.succeed(false)
        const giveWay = dialling?.active === true ? FiberMap.remove(map, from) : Effect.void
        return Effect.andThen(giveWay, Effect.suspend(() => acceptNow(map, connection, prefix, release, encryption)))
      })
    const acceptNow = (
      map: FiberMap.FiberMap<string, void, never>,
      connection: Tcp.Connection,
      prefix: Uint8Array,
      release: Effect.Effect<void>,
      encryption?: PeerInfo["encryption"]
    ) =>
      Effect.suspend(() => {
        if (!open() || active >= maxPeers) return Effect.succeed(false)
        if (budget !== undefined && !budget.tryAcquire()) return Effect.succeed(false)
        active++
        const key = `in:${connection.remoteAddress}`
        inboundFrom.add(connection.remoteAddress)
        return FiberMap.run(
          map,
          key,
          PeerSession.accept({
            connection,
            prefix,
            handle: options.handle,
            config: options.peerConfig,
            encryption
          }).pipe(
            Effect.catchAll((error) => inboundEnded(connection, error)),
            Effect.ensuring(Effect.andThen(
              Effect.sync(() => {
                active--
                inboundFrom.delete(connection.remoteAddress)
                budget?.release()
              }),
              release
            ))
          ),
          { onlyIfMissing: true }
        ).pipe(Effect.as(true))
      })

    const announce = (announcer: Announcer.Options, onBatch?: (batch: Announcer.PeerBatch) => void) =>
      Announcer.stream(announcer).pipe(
        Stream.runForEach((batch) =>
          Effect.sync(() => {
            trackerAnswered = true
            onBatch?.(batch)
            for (const p of batch.peers) add(p.ip, p.port, "tracker", announcer.infoHash)
          })
        )
      )

    const dhtPinger = (node: DhtNode.Node) =>
      Queue.take(dhtPings).pipe(
        Effect.flatMap((p) => Effect.ignore(node.ping(p.host, p.port))),
        Effect.forever
      )
    const dhtLookups = (node: DhtNode.Node, o: DhtOptions) =>
      Effect.gen(function*() {
        for (;;) {
          // Peers announced to our own node (a lookup never asks ourselves), then an iterative get_peers.
          for (const a of yield* node.storedPeers(o.infoHash)) add(a.ip, a.port, "dht", o.infoHash)
          yield* Stream.runForEach(node.lookup(o.infoHash), (a) => Effect.sync(() => add(a.ip, a.port, "dht", o.infoHash)))
          if (o.announcePort !== undefined && o.announcePort > 0) yield* node.announce(o.infoHash, o.announcePort)
          yield* Effect.sleep(o.interval())
        }
      })
    const dht = (node: DhtNode.Node, o: DhtOptions): Effect.Effect<never> =>
      Effect.zipRight(
        Effect.all([dhtPinger(node), dhtLookups(node, o)], { concurrency: "unbounded", discard: true }),
        Effect.never
      )

    const punch = (host: string, port: number) => {
      add(host, port, "pex")
      const c = candidates.get(formatAddress(host, port))
      if (c === undefined || c.banned || c.active) return
      // Waiting out a backoff: that wait no longer acts (the punched dial's end begins the next one).
      c.waiting = false
      c.waits++
      c.givenUp = false
      if (c.queued) queue.splice(queue.indexOf(c), 1)
      c.queued = true
      queue.unshift(c)
      wake.unsafeOffer(undefined)
    }

    return {
      add,
      origin: (peer) => candidates.get(peer)?.origin,
      punch,
      ban,
      isBanned: (addr) => candidates.get(addr)?.banned === true,
      markBanned: (addr) => {
        const c = candidates.get(addr)
        if (c !== undefined) c.banned = true
      },
      connected: (peer) => {
        const c = candidates.get(peer)
        if (c !== undefined) {
          c.connected = true
          c.known = true
        }
        everConnected = true
      },
      start,
      accept,
      announce,
      dht,
      pingDht: (host, port) => void dhtPings.unsafeOffer({ host, port }),
      setMaxPeers: (max) => {
        maxPeers = Math.max(1, Math.floor(max))
        wake.unsafeOffer(undefined)
      },
      maxPeers: () => maxPeers,
      wake: () => void wake.unsafeOffer(undefined),
      active: () => active,
      everConnected: () => everConnected,
      trackerAnswered: () => trackerAnswered,
      lastAttempt: () => lastAttempt,
      addresses: () =>
        [...candidates.values()].filter((c) => !c.banned).map((c) => ({
          host: c.host,
          port: c.port,
          source: c.origin.first
        }))
    }
  })

/** Default reconnect backoff of a peer never connected: 1 s, 2 s, 4 s, 8 s, 16 s, then the peer is given up. */
export const defaultReconnect: Schedule.Schedule<unknown> = Schedule.exponential("1 second", 2).pipe(
  Schedule.intersect(Schedule.recurs(5))
)

/** Default reconnect backoff of a peer that connected before: 1 s, 2 s, 4 s … 60 s, then every 60 s, forever. */
export const defaultReconnectKnown: Schedule.Schedule<unknown> = Schedule.exponential("1 second", 2).pipe(
  Schedule.either(Schedule.spaced("60 seconds"))
)
