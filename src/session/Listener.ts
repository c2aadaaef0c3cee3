/**
 * One listening TCP socket for every torrent of a client: inbound connections are routed by the info-hash of their
 * handshake (ARCHITECTURE.md, session/ row).
 *
 * Per connection: the handshake is read with `Handshake.reader` (bounded by `handshakeTimeout`). An info-hash no
 * torrent registered is refused as soon as its 48 bytes are in; otherwise the whole 68-byte handshake is awaited so a
 * connection from ourselves (our own peer id) is refused too, then the connection and the bytes read go to the
 * torrent's `accept` (`PeerSession.accept` with the prefix), which refuses when the torrent is at its peer limit.
 * Duplicate connections (a peer id already connected to that torrent) are refused by the torrent (Uploader.ts).
 *
 * Message stream encryption (docs/ENCRYPTION.md): the first bytes tell a plain handshake from an encrypted one
 * (`Mse.classify`: a plain one starts with 19 "BitTorrent protocol", which a 96-byte DH key practically never does;
 * the decision takes at most 20 bytes). An encrypted connection goes through `Encryption.respond`, which finds the
 * torrent from HASH('req2', info-hash) over the registered torrents (unknown ones are refused like a plain unknown
 * info-hash); the BitTorrent handshake inside must then name the same torrent, and the torrent gets the decrypting
 * connection. Policy "require" refuses plain inbound connections, "off" encrypted ones (counted as `policy`).
 * `handshakeTimeout` bounds everything from accept to the routing decision, MSE included.
 */
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Exit from "effect/Exit"
import * as FiberSet from "effect/FiberSet"
import * as Scope from "effect/Scope"
import * as Bytes from "../core/Bytes.ts"
import type { InfoHashV1, PeerId } from "../core/InfoHash.ts"
import * as Tcp from "../net/Tcp.ts"
import * as Encryption from "../peer/Encryption.ts"
import * as Handshake from "../wire/Handshake.ts"
import * as Mse from "../wire/Mse.ts"
import { WireError } from "../wire/WireError.ts"

/** Runs an inbound session for the torrent; false when it refuses (not running, peer limit). */
export type Accept = (
  connection: Tcp.Connection,
  prefix: Uint8Array,
  release: Effect.Effect<void>,
  encryption?: Encryption.Negotiated
) => Effect.Effect<boolean>

export interface Options {
  readonly peerId: PeerId
  /** Default "0.0.0.0"; "::" for IPv6 (and IPv4 where the system maps it). */
  readonly host?: string | undefined
  /** Default 0: a free port, read it from `address`. */
  readonly port?: number | undefined
  /** Default 10 s. */
  readonly handshakeTimeout?: Duration.DurationInput | undefined
  /** Which inbound connections are accepted: "prefer" (default) both, "require" encrypted only, "off" plain only. */
  readonly encryption?: Encryption.Policy | undefined
}

export interface Counts {
  readonly routed: number
  readonly unknownInfoHash: number
  readonly self: number
  readonly refused: number
  readonly failed: number
  /** Refused by the encryption policy (plain under "require", encrypted under "off"). */
  readonly policy: number
  /** Routed connections that came encrypted (MSE, either cipher). */
  readonly encrypted: number
}

export interface Listener {
  readonly address: Tcp.Address
  /** Routes connections for `infoHash` to `accept` for the lifetime of the caller's scope. */
  readonly register: (infoHash: InfoHashV1, accept: Accept) => Effect.Effect<void, never, Scope.Scope>
  /** What happened to inbound connections so far. */
  readonly counts: () => Counts
  /**
   * Routes the connections of another source (the uTP socket's `accept`) like the TCP ones, for the lifetime of
   * the caller's scope.
   */
  readonly serve: (accept: Effect.Effect<Tcp.Connection, Tcp.TcpError, Scope.Scope>) => Effect.Effect<void, never, Scope.Scope>
}

interface Decided {
  readonly routed: Routed
  /** The connection to hand over (the decrypting one after MSE). */
  readonly conn: Tcp.Connection
  readonly encryption: Encryption.Negotiated
}

type Routed =
  | { readonly _tag: "Route"; readonly accept: Accept; readonly prefix: Uint8Array }
  | { readonly _tag: "Refuse"; readonly why: "unknown" | "self" | "failed" | "policy" }

/** Listens for the lifetime of the scope. */
export const make = (options: Options): Effect.Effect<Listener, Tcp.TcpError, Scope.Scope> =>
  Effect.gen(function*() {
    const tcp = yield* Tcp.listen({ host: options.host ?? "0.0.0.0", port: options.port ?? 0 })
    const torrents = new Map<string, Accept>()
    /** HASH('req2', info-hash) in hex → info-hash, for encrypted inbound connections. */
    const byReq2 = new Map<string, InfoHashV1>()
    const counts = { routed: 0, unknownInfoHash: 0, self: 0, refused: 0, failed: 0, policy: 0, encrypted: 0 }
    const timeout = Duration.decode(options.handshakeTimeout ?? Duration.seconds(10))
    const policy = options.encryption ?? "prefer"
    const connections = yield* FiberSet.make<void, never>()
    const lookup = (req2: Uint8Array) => byReq2.get(Bytes.toHex(req2))

    /** Reads until `Mse.classify` decides (at most 20 bytes); the bytes read are returned, the socket paused. */
    const firstBytes = (conn: Tcp.Connection) =>
      Effect.async<{ readonly kind: "plain" | "encrypted"; readonly bytes: Uint8Array }>((resume) => {
        const chunks: Array<Uint8Array> = []
        let finished = false
        conn.onData((chunk) => {
          if (finished) return
          chunks.push(Uint8Array.from(chunk))
          const bytes = Bytes.concat(chunks)
          const kind = Mse.classify(bytes)
          if (kind === "undecided") return
          finished = true
          conn.pause()
          resume(Effect.succeed({ kind, bytes }))
        })
        conn.resume()
        return Effect.sync(() => {
          finished = true
        })
      })

    /**
     * Reads the handshake (after `prefix`, bytes already read); the connection stays paused afterwards so no byte
     * is lost before the session takes it. With `expect`, the handshake must name that torrent (the MSE one).
     */
    const readHandshake = (conn: Tcp.Connection, prefix: Uint8Array, expect: InfoHashV1 | undefined) =>
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
        const onChunk = (chunk: Uint8Array) => {
          if (finished) return
          chunks.push(Uint8Array.from(chunk))
          const p = reader.push(chunk)
          if (p instanceof WireError) return finish({ _tag: "Refuse", why: "failed" })
          const infoHash = p._tag === "Done" ? p.handshake.infoHash : p.infoHash
          if (infoHash === undefined) return
          if (expect !== undefined && !Bytes.equals(infoHash, expect)) return finish({ _tag: "Refuse", why: "failed" })
          const accept = torrents.get(Bytes.toHex(infoHash))
          if (accept === undefined) return finish({ _tag: "Refuse", why: "unknown" })
          if (p._tag === "NeedMore") return
          if (Bytes.equals(p.handshake.peerId, options.peerId)) return finish({ _tag: "Refuse", why: "self" })
          finish({ _tag: "Route", accept, prefix: Bytes.concat(chunks) })
        }
        conn.onData(onChunk)
        if (prefix.length > 0) onChunk(prefix)
        if (!finished) conn.resume()
        return Effect.sync(() => {
          finished = true
        })
      })

    const refuse = (why: "unknown" | "failed" | "policy", conn: Tcp.Connection): Decided => ({
      routed: { _tag: "Refuse", why },
      conn,
      encryption: "none"
    })

    /** Classifies, runs MSE when encrypted, reads the handshake: the routing decision and the connection to use. */
    const decide = (conn: Tcp.Connection): Effect.Effect<Decided> =>
      Effect.gen(function*() {
        const first = yield* firstBytes(conn)
        if (first.kind === "plain") {
          if (policy === "require") return refuse("policy", conn)
          const plain: Decided = { routed: yield* readHandshake(conn, first.bytes, undefined), conn, encryption: "none" }
          return plain
        }
        if (policy === "off") return refuse("policy", conn)
        const mse = yield* Effect.either(
          Encryption.respond(conn, lookup, policy, { prefix: first.bytes, timeout })
        )
        if (mse._tag === "Left") return refuse(mse.left.reason === "unknown-info-hash" ? "unknown" : "failed", conn)
        const routed = yield* readHandshake(mse.right.connection, new Uint8Array(0), mse.right.infoHash)
        return { routed, conn: mse.right.connection, encryption: mse.right.cipher }
      }).pipe(Effect.timeoutTo({
        duration: timeout,
        onTimeout: () => refuse("failed", conn),
        onSuccess: (r) => r
      }))

    const route = (scope: Scope.CloseableScope, conn: Tcp.Connection) =>
      Effect.gen(function*() {
        const decided = yield* decide(conn)
        const r = decided.routed
        if (r._tag === "Refuse") {
          if (r.why === "unknown") counts.unknownInfoHash++
          else if (r.why === "self") counts.self++
          else if (r.why === "policy") counts.policy++
          else counts.failed++
          return yield* Scope.close(scope, Exit.void)
        }
        // The session installs its own data handler, then reading resumes.
        const routedConn = decided.conn
        const handover: Tcp.Connection = {
          ...routedConn,
          onData: (h) => {
            routedConn.onData(h)
            routedConn.resume()
          }
        }
        const ok = yield* r.accept(handover, r.prefix, Scope.close(scope, Exit.void), decided.encryption)
        if (ok) {
          counts.routed++
          if (decided.encryption !== "none") counts.encrypted++
        }
        else {
          counts.refused++
          yield* Scope.close(scope, Exit.void)
        }
      }).pipe(Effect.onInterrupt(() => Scope.close(scope, Exit.void)))

    const loop = (accept: Effect.Effect<Tcp.Connection, Tcp.TcpError, Scope.Scope>) =>
      Effect.gen(function*() {
        for (;;) {
          const scope = yield* Scope.make()
          const conn = yield* Scope.extend(accept, scope).pipe(
            Effect.tapError(() => Scope.close(scope, Exit.void))
          )
          yield* FiberSet.run(connections, route(scope, conn))
        }
      }).pipe(Effect.catchAll((e) => Effect.logWarning(`listener stopped: ${e.message}`)))
    yield* Effect.forkScoped(loop(tcp.accept))

    return {
      address: tcp.address,
      register: (infoHash, accept) => {
        const key = Bytes.toHex(infoHash)
        return Effect.acquireRelease(
          Effect.sync(() => {
            torrents.set(key, accept)
            byReq2.set(Bytes.toHex(Mse.req2Hash(infoHash)), infoHash)
          }),
          () =>
            Effect.sync(() => {
              if (torrents.get(key) !== accept) return
              torrents.delete(key)
              byReq2.delete(Bytes.toHex(Mse.req2Hash(infoHash)))
            })
        )
      },
      counts: () => ({ ...counts }),
      serve: (accept) => Effect.asVoid(Effect.forkScoped(loop(accept)))
    }
  })
