/**
 * UDP trackers (BEP 15): connect, then announce or scrape with the connection id, which is reused for its minute
 * (anacrolix's conn-client.go). Sockets are opened lazily, one per address family, and live as long as the scope
 * that made this client; IPv4 and IPv6 trackers both work.
 */
import * as Clock from "effect/Clock"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Either from "effect/Either"
import type * as Schedule from "effect/Schedule"
import * as Scope from "effect/Scope"
import * as Bytes from "../core/Bytes.ts"
import * as Dns from "../net/Dns.ts"
import * as Udp from "../net/Udp.ts"
import type { AnnounceRequest, AnnounceResponse, ScrapeEntry, ScrapeResponse } from "./Tracker.ts"
import { TrackerError } from "./TrackerError.ts"
import * as UdpCodec from "./UdpCodec.ts"
import * as UdpDispatcher from "./UdpDispatcher.ts"
import * as UdpTransaction from "./UdpTransaction.ts"

export interface Options {
  /** Retransmission waits (default: BEP 15's 15·2^n s, n ≤ 8). */
  readonly retransmit?: Schedule.Schedule<unknown> | undefined
  /** How long a connection id is reused (BEP 15: one minute). */
  readonly connectionIdTtl?: Duration.DurationInput | undefined
  /** Local addresses to bind (default: all interfaces). */
  readonly bind4?: string | undefined
  readonly bind6?: string | undefined
  /** Socket factory; tests substitute in-memory sockets. */
  readonly openSocket?: ((family: Udp.Family) => Effect.Effect<Udp.Socket, Udp.UdpError, Scope.Scope>) | undefined
  readonly lookup?: ((host: string) => Effect.Effect<Dns.Address, Dns.DnsError>) | undefined
}

export interface UdpTracker {
  readonly announce: (url: string, request: AnnounceRequest) => Effect.Effect<AnnounceResponse, TrackerError>
  readonly scrape: (url: string, infoHashes: ReadonlyArray<Uint8Array>) => Effect.Effect<ScrapeResponse, TrackerError>
}

interface Target {
  readonly address: string
  readonly port: number
  readonly family: Udp.Family
}

/** Host and port of a `udp://host:port[/…]` URL (IPv6 hosts in brackets). */
export const parseUrl = (url: string): Either.Either<{ readonly host: string; readonly port: number }, string> => {
  let u: URL
  try {
    u = new URL(url)
  } catch {
    return Either.left("invalid URL")
  }
  if (u.protocol !== "udp:") return Either.left(`not a udp URL: ${u.protocol}`)
  const port = Number(u.port)
  if (u.port === "" || !Number.isInteger(port) || port < 1 || port > 65535) return Either.left("udp URL has no port")
  const host = u.hostname.startsWith("[") ? u.hostname.slice(1, -1) : u.hostname
  return host === "" ? Either.left("udp URL has no host") : Either.right({ host, port })
}

export const make = (options?: Options): Effect.Effect<UdpTracker, never, Scope.Scope> =>
  Effect.gen(function*() {
    const scope = yield* Effect.scope
    const schedule = options?.retransmit ?? UdpTransaction.bep15Retransmit
    const ttl = Duration.toMillis(options?.connectionIdTtl ?? Duration.minutes(1))
    const lookup = options?.lookup ?? Dns.lookup
    const open = options?.openSocket ??
      ((family: Udp.Family) =>
        Udp.make({ family, address: family === "udp4" ? options?.bind4 : options?.bind6 }))

    // One dispatcher per family, created on first use in this client's scope. A failed bind is not cached.
    const dispatchers = new Map<Udp.Family, UdpDispatcher.Dispatcher>()
    const lock = yield* Effect.makeSemaphore(1)
    const dispatcherFor = (family: Udp.Family) =>
      lock.withPermits(1)(Effect.suspend(() => {
        const existing = dispatchers.get(family)
        if (existing !== undefined) return Effect.succeed(existing)
        return Scope.extend(open(family), scope).pipe(
          Effect.flatMap(UdpDispatcher.make),
          Effect.tap((d) => Effect.sync(() => dispatchers.set(family, d)))
        )
      }))

    const connections = new Map<string, { readonly id: bigint; readonly expires: number }>()

    const fail = (url: string, reason: TrackerError["reason"], detail: string, cause?: unknown) =>
      new TrackerError({ reason, url, detail, ...(cause !== undefined ? { cause } : {}) })

    const resolve = (url: string): Effect.Effect<Target, TrackerError> => {
      const parsed = parseUrl(url)
      if (Either.isLeft(parsed)) return Effect.fail(fail(url, "unsupported", parsed.left))
      const { host, port } = parsed.right
      return lookup(host).pipe(
        Effect.mapError((e) => fail(url, "network", e.message, e)),
        Effect.map((a) => ({ address: a.address, port, family: a.family === 4 ? "udp4" : "udp6" }))
      )
    }

    const exchange = (url: string, what: string, d: UdpDispatcher.Dispatcher, t: Target, build: (tid: number) => Uint8Array) =>
      UdpTransaction.run(d, t.address, t.port, build, schedule).pipe(
        Effect.mapError((e) =>
          e._tag === "TransactionTimeout"
            ? fail(url, "timeout", `no ${what} reply after ${e.attempts} attempt${e.attempts === 1 ? "" : "s"}`)
            : fail(url, "network", e.message, e)
        ),
        Effect.flatMap((bytes) => {
          const r = UdpCodec.decodeResponse(bytes, t.family === "udp4" ? 4 : 6)
          if (Either.isLeft(r)) return Effect.fail(fail(url, "bad-response", `${what} reply: ${r.left}`))
          if (r.right._tag === "Error") return Effect.fail(fail(url, "failure", r.right.message))
          return Effect.succeed(r.right)
        })
      )

    const connectionId = (url: string, d: UdpDispatcher.Dispatcher, t: Target) =>
      Effect.gen(function*() {
        const key = `${t.address}|${t.port}`
        const now = yield* Clock.currentTimeMillis
        const cached = connections.get(key)
        if (cached !== undefined && cached.expires > now) return cached.id
        const r = yield* exchange(url, "connect", d, t, (transactionId) =>
          UdpCodec.encodeRequest({ _tag: "Connect", transactionId }))
        if (r._tag !== "Connect") return yield* fail(url, "bad-response", `expected a connect reply, got ${r._tag}`)
        connections.set(key, { id: r.connectionId, expires: (yield* Clock.currentTimeMillis) + ttl })
        return r.connectionId
      })

    const session = (url: string) =>
      Effect.gen(function*() {
        const target = yield* resolve(url)
        const d = yield* dispatcherFor(target.family).pipe(
          Effect.mapError((e) => fail(url, "network", e.message, e))
        )
        const id = yield* connectionId(url, d, target)
        return { target, d, id }
      })

    const announce = (url: string, req: AnnounceRequest) =>
      Effect.gen(function*() {
        const { d, id, target } = yield* session(url)
        const r = yield* exchange(url, "announce", d, target, (transactionId) =>
          UdpCodec.encodeRequest({
            _tag: "Announce",
            connectionId: id,
            transactionId,
            infoHash: req.infoHash,
            peerId: req.peerId,
            downloaded: BigInt(Math.max(0, Math.trunc(req.downloaded))),
            left: BigInt(Math.max(0, Math.trunc(req.left))),
            uploaded: BigInt(Math.max(0, Math.trunc(req.uploaded))),
            event: req.event,
            key: req.key ?? 0,
            numwant: req.numwant ?? -1,
            port: req.port
          }))
        if (r._tag !== "Announce") return yield* fail(url, "bad-response", `expected an announce reply, got ${r._tag}`)
        return {
          interval: r.interval,
          peers: r.peers,
          complete: r.seeders,
          incomplete: r.leechers
        } satisfies AnnounceResponse
      })

    const scrape = (url: string, infoHashes: ReadonlyArray<Uint8Array>) =>
      Effect.gen(function*() {
        const { d, id, target } = yield* session(url)
        const out = new Map<string, ScrapeEntry>()
        for (let i = 0; i < infoHashes.length; i += UdpCodec.MAX_SCRAPE) {
          const chunk = infoHashes.slice(i, i + UdpCodec.MAX_SCRAPE)
          const r = yield* exchange(url, "scrape", d, target, (transactionId) =>
            UdpCodec.encodeRequest({ _tag: "Scrape", connectionId: id, transactionId, infoHashes: chunk }))
          if (r._tag !== "Scrape") return yield* fail(url, "bad-response", `expected a scrape reply, got ${r._tag}`)
          if (r.entries.length !== chunk.length) {
            return yield* fail(url, "bad-response", `scrape reply has ${r.entries.length} entries for ${chunk.length}`)
          }
          chunk.forEach((h, j) => out.set(Bytes.toHex(h), r.entries[j]!))
        }
        return out as ScrapeResponse
      })

    return { announce, scrape }
  })
