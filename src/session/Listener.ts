/**
 * One listening TCP socket for every torrent of a client: inbound connections are routed by the info-hash of their
 * handshake (ARCHITECTURE.md, session/ row).
 *
 * Per connection: the handshake is read with `Handshake.reader` (bounded by `handshakeTimeout`). An info-hash no
 * torrent registered is refused as soon as its 48 bytes are in; otherwise the whole 68-byte handshake is awaited so a
 * connection from ourselves (our own peer id) is refused too, then the connection and the bytes read go to the
 * torrent's `accept` (`PeerSession.accept` with the prefix), which refuses when the torrent is at its peer limit.
 * Duplicate connections (a peer id already connected to that torrent) are refused by the torrent (Uploader.ts).
 */
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Exit from "effect/Exit"
import * as FiberSet from "effect/FiberSet"
import * as Scope from "effect/Scope"
import * as Bytes from "../core/Bytes.ts"
import type { InfoHashV1, PeerId } from "../core/InfoHash.ts"
import * as Tcp from "../net/Tcp.ts"
import * as Handshake from "../wire/Handshake.ts"
import { WireError } from "../wire/WireError.ts"

/** Runs an inbound session for the torrent; false when it refuses (not running, peer limit). */
export type Accept = (
  connection: Tcp.Connection,
  prefix: Uint8Array,
  release: Effect.Effect<void>
) => Effect.Effect<boolean>

export interface Options {
  readonly peerId: PeerId
  /** Default "0.0.0.0"; "::" for IPv6 (and IPv4 where the system maps it). */
  readonly host?: string | undefined
  /** Default 0: a free port, read it from `address`. */
  readonly port?: number | undefined
  /** Default 10 s. */
  readonly handshakeTimeout?: Duration.DurationInput | undefined
}

export interface Counts {
  readonly routed: number
  readonly unknownInfoHash: number
  readonly self: number
  readonly refused: number
  readonly failed: number
}

export interface Listener {
  readonly address: Tcp.Address
  /** Routes connections for `infoHash` to `accept` for the lifetime of the caller's scope. */
  readonly register: (infoHash: InfoHashV1, accept: Accept) => Effect.Effect<void, never, Scope.Scope>
  /** What happened to inbound connections so far. */
  readonly counts: () => Counts
}

type Routed =
  | { readonly _tag: "Route"; readonly accept: Accept; readonly prefix: Uint8Array }
  | { readonly _tag: "Refuse"; readonly why: "unknown" | "self" | "failed" }

/** Listens for the lifetime of the scope. */
export const make = (options: Options): Effect.Effect<Listener, Tcp.TcpError, Scope.Scope> =>
  Effect.gen(function*() {
    const tcp = yield* Tcp.listen({ host: options.host ?? "0.0.0.0", port: options.port ?? 0 })
    const torrents = new Map<string, Accept>()
    const counts = { routed: 0, unknownInfoHash: 0, self: 0, refused: 0, failed: 0 }
    const timeout = Duration.decode(options.handshakeTimeout ?? Duration.seconds(10))
    const connections = yield* FiberSet.make<void, never>()

    /** Reads the handshake; the connection stays paused afterwards so no byte is lost before the session takes it. */
    const readHandshake = (conn: Tcp.Connection) =>
      Effect.async<Routed>((resume) => {
        const reader = Handshake.reader()
        const chunks: Array<Uint8Array> = []
        let finished = false
        const finish = (r: Routed) => {
          if (finished) return
          finished = true
          conn.pause()
          resume(Effect.succeed(r))
        }
        conn.onData((chunk) => {
          if (finished) return
          chunks.push(Uint8Array.from(chunk))
          const p = reader.push(chunk)
          if (p instanceof WireError) return finish({ _tag: "Refuse", why: "failed" })
          const infoHash = p._tag === "Done" ? p.handshake.infoHash : p.infoHash
          if (infoHash === undefined) return
          const accept = torrents.get(Bytes.toHex(infoHash))
          if (accept === undefined) return finish({ _tag: "Refuse", why: "unknown" })
          if (p._tag === "NeedMore") return
          if (Bytes.equals(p.handshake.peerId, options.peerId)) return finish({ _tag: "Refuse", why: "self" })
          finish({ _tag: "Route", accept, prefix: Bytes.concat(chunks) })
        })
        return Effect.sync(() => {
          finished = true
        })
      }).pipe(Effect.timeoutTo({
        duration: timeout,
        onTimeout: (): Routed => ({ _tag: "Refuse", why: "failed" }),
        onSuccess: (r) => r
      }))

    const route = (scope: Scope.CloseableScope, conn: Tcp.Connection) =>
      Effect.gen(function*() {
        const r = yield* readHandshake(conn)
        if (r._tag === "Refuse") {
          if (r.why === "unknown") counts.unknownInfoHash++
          else if (r.why === "self") counts.self++
          else counts.failed++
          return yield* Scope.close(scope, Exit.void)
        }
        // The session installs its own data handler, then reading resumes.
        const handover: Tcp.Connection = {
          ...conn,
          onData: (h) => {
            conn.onData(h)
            conn.resume()
          }
        }
        const ok = yield* r.accept(handover, r.prefix, Scope.close(scope, Exit.void))
        if (ok) counts.routed++
        else {
          counts.refused++
          yield* Scope.close(scope, Exit.void)
        }
      }).pipe(Effect.onInterrupt(() => Scope.close(scope, Exit.void)))

    const loop = Effect.gen(function*() {
      for (;;) {
        const scope = yield* Scope.make()
        const conn = yield* Scope.extend(tcp.accept, scope).pipe(
          Effect.tapError(() => Scope.close(scope, Exit.void))
        )
        yield* FiberSet.run(connections, route(scope, conn))
      }
    })
    yield* Effect.forkScoped(loop.pipe(Effect.catchAll((e) => Effect.logWarning(`listener stopped: ${e.message}`))))

    return {
      address: tcp.address,
      register: (infoHash, accept) => {
        const key = Bytes.toHex(infoHash)
        return Effect.acquireRelease(
          Effect.sync(() => void torrents.set(key, accept)),
          () => Effect.sync(() => void (torrents.get(key) === accept && torrents.delete(key)))
        )
      },
      counts: () => ({ ...counts })
    }
  })
