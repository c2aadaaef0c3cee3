/**
 * Message stream encryption (MSE/PE) over a real connection: runs the pure handshakers of `wire/Mse.ts` over a
 * `Tcp.Connection` with a deadline, then hands back a `Tcp.Connection` whose reads are decrypted and whose writes
 * are encrypted, so a peer session above it sees plain BitTorrent bytes. docs/ENCRYPTION.md has the design, the
 * policy table and the measured costs.
 *
 * - `initiate` (outgoing): sends Ya + PadA at once, offers rc4 and plaintext under "prefer", rc4 only under
 *   "require"; an optional initial payload travels inside the handshake (IA). Peer sessions send none: their
 *   BitTorrent handshake follows the MSE handshake (PeerSession.ts says why).
 * - `respond` (incoming, after `Mse.classify` said "encrypted"): finds the torrent from HASH('req2', SKEY) through
 *   `lookup`; accepts rc4 and plaintext under "prefer" and picks **plaintext** when offered both (libtorrent's
 *   default, `prefer_rc4 = false`: the handshake is obfuscated, the payload costs no cipher work); rc4 only under
 *   "require".
 * - `connect` (outgoing, with the policy): "off" dials plain; "require" dials and runs `initiate` (a failure is the
 *   connection's failure); "prefer" runs `initiate` unless `plainOnly` remembers the address, and when the MSE
 *   handshake fails it dials again plain, remembering addresses that never answered with an MSE key (so the next
 *   connection goes plain at once). A DH secret with a leading zero byte is redialled with fresh keys first
 *   (libtorrent before arvidn/libtorrent#8434 refuses those, one connection in 256).
 *
 * Every failure is an `MseError`: the peer closed ("closed" before Yb, "refused" after), the deadline passed
 * ("timeout"), or the handshake itself was wrong (bad key, no sync, bad crypto_select, ...). Nothing throws.
 *
 * The wrapped connection:
 * - Reads: each chunk is decrypted **in place** and passed on. That is safe because the chunk is a fresh Node
 *   Buffer handed to our handler alone (Tcp.ts: valid during the call; nobody else reads it). The bytes that came
 *   with the end of the handshake (IA, or what followed PadD) and anything read before the caller installs its
 *   handler are delivered first, in order, from the tick after the first `onData` (or `resume`, when the caller
 *   paused first), never from inside those calls (as with `Tcp`).
 * - Writes: encrypted into a **copy** (one allocation and one memcpy per write, not per byte): callers may still
 *   hold written buffers (cached piece data, pooled blocks), so their bytes are never modified. Any further
 *   arguments of `write` (a completion callback, say) are passed to the underlying write of the encrypted copy,
 *   so they fire after *those* bytes were written.
 * - Everything else is forwarded: `writeBacklog` is the underlying socket's backlog (the encrypted copies are the
 *   same size as what was written), `bytesRead`/`bytesWritten` count wire bytes (the MSE handshake included),
 *   `pause`/`resume`/`close`/`closed` act on the socket.
 * - Plaintext selected: no cipher work at all; only the initial bytes are delivered first.
 */
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Either from "effect/Either"
import type * as Scope from "effect/Scope"
import type { InfoHashV1 } from "../core/InfoHash.ts"
import type * as Tcp from "../net/Tcp.ts"
import * as Mse from "../wire/Mse.ts"
import { MseError } from "../wire/MseError.ts"

export type Policy = Mse.Policy

/** What a connection ended up with: an MSE handshake then rc4 or plaintext, or plain BitTorrent ("none"). */
export type Negotiated = Mse.Cipher | "none"

/** `--encryption` values, for parsing. */
export const policies: ReadonlyArray<Policy> = ["prefer", "require", "off"]

export const isPolicy = (text: string): text is Policy => (policies as ReadonlyArray<string>).includes(text)

/** The result of a completed handshake. */
export interface Encrypted {
  /** The connection to use from now on (reads decrypted, writes encrypted). */
  readonly connection: Tcp.Connection
  readonly cipher: Mse.Cipher
  /** The torrent the handshake was keyed with (for `respond`, the one `lookup` found). */
  readonly infoHash: InfoHashV1
}

export interface HandshakeOptions {
  /** Deadline of the whole handshake (default 10 s); `MseError` "timeout" past it. */
  readonly timeout?: Duration.DurationInput | undefined
  /** Upper bound of our random paddings, 0..512 (default 512). */
  readonly maxPadding?: number | undefined
  /** Random bytes for keys and paddings (tests). */
  readonly random?: Mse.Random | undefined
}

export interface InitiateOptions extends HandshakeOptions {
  /** Sent encrypted inside the handshake (IA): typically our BitTorrent handshake. At most 65535 bytes. */
  readonly initialPayload?: Uint8Array | undefined
  /** See `Mse.InitiatorOptions`: fail with "leading-zero-secret" so the caller redials (`connect` does). */
  readonly rejectLeadingZeroSecret?: boolean | undefined
}

export interface RespondOptions extends HandshakeOptions {
  /** Bytes already read from the connection (the listener's classification), the start of Ya. */
  readonly prefix?: Uint8Array | undefined
}

const defaultTimeout = Duration.seconds(10)

/** The first argument of `Connection.write` and whatever follows it (forwarded untouched). */
type WriteRest = Tcp.Connection["write"] extends (bytes: Uint8Array, ...rest: infer R) => void ? R : never

/**
 * The connection after a completed handshake. `initial` is already decrypted; `late` holds raw chunks that arrived
 * after the handshake's last byte but before this wrapper existed (normally none: the socket is paused). From here
 * on the wrapper's own handler reads the socket; it keeps chunks (copies) while the caller has no handler or is
 * paused, and the socket itself is only resumed once the caller has a handler, so that buffer stays small.
 */
const wrap = (conn: Tcp.Connection, done: Mse.Done, late: ReadonlyArray<Uint8Array>): Tcp.Connection => {
  const rc4 = done.cipher === "rc4"
  const decrypt = done.decrypt
  const encrypt = done.encrypt
  const pending: Array<Uint8Array> = []
  if (done.initialPayload.length > 0) pending.push(done.initialPayload)
  for (const chunk of late) {
    decrypt.process(chunk)
    pending.push(chunk)
  }
  let handler: ((chunk: Uint8Array) => void) | undefined
  let paused = false
  let scheduled = false
  /**
   * Delivers what was kept, in order, until the caller pauses; then lets the socket flow. Like `Tcp`, the handler is
   * never called from inside `onData` or `resume` (the caller may still be setting up, e.g. feeding its own prefix
   * first): kept chunks go out from a later tick. The socket stays paused while any are kept, so order holds.
   */
  const start = () => {
    if (paused || handler === undefined) return
    if (pending.length === 0) return conn.resume()
    if (scheduled) return
    scheduled = true
    process.nextTick(() => {
      scheduled = false
      while (pending.length > 0 && !paused && handler !== undefined) handler(pending.shift()!)
      if (pending.length === 0 && !paused && handler !== undefined) conn.resume()
    })
  }
  conn.onData((chunk) => {
    if (rc4) decrypt.process(chunk)
    if (handler === undefined || paused || pending.length > 0) {
      pending.push(Uint8Array.prototype.slice.call(chunk))
      start()
    } else handler(chunk)
  })
  // Written member by member on purpose: a member added to `Tcp.Connection` must be forwarded here, and the type
  // checker says so (a spread would pass an unencrypted `write`-like member through silently).
  const wrapped: Tcp.Connection = {
    remoteAddress: conn.remoteAddress,
    remote: conn.remote,
    transport: conn.transport,
    onData: (h) => {
      handler = h
      start()
    },
    write: rc4
      ? (bytes: Uint8Array, ...rest: WriteRest) => {
        if (bytes.length === 0) return conn.write(bytes, ...rest)
        // Uninitialized memory is fine: every byte is overwritten at once (measured a little cheaper than a zeroed one).
        const out = Buffer.allocUnsafe(bytes.length)
        out.set(bytes)
        encrypt.process(out)
        conn.write(out, ...rest)
      }
      : (bytes: Uint8Array, ...rest: WriteRest) => conn.write(bytes, ...rest),
    pause: () => {
      paused = true
      conn.pause()
    },
    resume: () => {
      paused = false
      start()
    },
    isPaused: () => paused,
    close: () => conn.close(),
    closed: conn.closed,
    bytesRead: () => conn.bytesRead(),
    bytesWritten: () => conn.bytesWritten(),
    writeBacklog: () => conn.writeBacklog?.() ?? 0
  }
  return wrapped
}

/**
 * Runs `machine` over `conn` until it is done, fails, the peer closes or the deadline passes. The socket is paused
 * when it ends, so no byte is lost before `wrap` takes over.
 */
const run = (
  conn: Tcp.Connection,
  machine: Mse.Handshaker,
  prefix: Uint8Array | undefined,
  timeout: Duration.DurationInput | undefined
): Effect.Effect<Encrypted, MseError> =>
  Effect.suspend(() => {
    /** Whether the peer has answered (we sent something in reply to it): a close after that is a refusal. */
    let answered = false
    let state: "running" | "done" | "over" = "running"
    const late: Array<Uint8Array> = []
    const handshake = Effect.async<Mse.Done, MseError>((resume) => {
      const finish = (exit: Either.Either<Mse.Done, MseError>) => {
        if (state !== "running") return
        state = Either.isRight(exit) ? "done" : "over"
        conn.pause()
        resume(Either.isRight(exit) ? Effect.succeed(exit.right) : Effect.fail(exit.left))
      }
      const feed = (chunk: Uint8Array) => {
        if (state === "done") {
          // Read after the handshake's end but before `wrap` took over: kept (a copy: the chunk is only a view).
          late.push(Uint8Array.prototype.slice.call(chunk))
          return
        }
        if (state === "over") return
        const step = machine.push(chunk)
        for (const bytes of step.send) {
          answered = true
          conn.write(bytes)
        }
        if (step.error !== undefined) finish(Either.left(step.error))
        else if (step.done !== undefined) finish(Either.right(step.done))
      }
      conn.onData(feed)
      const first = machine.start()
      if (first.length > 0) conn.write(first)
      if (prefix !== undefined && prefix.length > 0) feed(prefix)
      if (state === "running") conn.resume()
      return Effect.sync(() => {
        // Interrupted (deadline, close, the caller): stop reading; the caller closes the connection.
        state = "over"
        conn.pause()
      })
    })
    const closed = conn.closed.pipe(
      Effect.exit,
      Effect.flatMap((exit) =>
        Effect.fail(
          answered
            ? new MseError({ reason: "refused", detail: "the peer closed the connection during the MSE handshake" })
            : new MseError({
              reason: "closed",
              detail: exit._tag === "Failure"
                ? "the connection failed before the peer answered the MSE handshake"
                : "the peer closed the connection without answering the MSE handshake"
            })
        )
      )
    )
    const limit = timeout ?? defaultTimeout
    return Effect.raceFirst(handshake, closed).pipe(
      Effect.timeoutFail({
        duration: limit,
        onTimeout: () =>
          new MseError({
            reason: "timeout",
            detail: `no MSE handshake within ${Duration.format(Duration.decode(limit))}`
          })
      }),
      Effect.map((done) => ({ connection: wrap(conn, done, late), cipher: done.cipher, infoHash: done.infoHash }))
    )
  })

/**
 * The outgoing handshake for torrent `infoHash`: "prefer" offers rc4 and plaintext (the peer picks), "require"
 * only rc4. Fails with `MseError`; the caller closes the connection.
 */
export const initiate = (
  conn: Tcp.Connection,
  infoHash: InfoHashV1,
  policy: Exclude<Policy, "off">,
  options: InitiateOptions = {}
): Effect.Effect<Encrypted, MseError> =>
  Effect.suspend(() =>
    run(
      conn,
      Mse.initiator({
        infoHash,
        cryptoProvide: Mse.cryptoFor(policy)!,
        initialPayload: options.initialPayload,
        maxPadding: options.maxPadding,
        random: options.random,
        rejectLeadingZeroSecret: options.rejectLeadingZeroSecret
      }),
      undefined,
      options.timeout
    )
  )

/**
 * The incoming handshake: `lookup` maps HASH('req2', info-hash) (see `Mse.req2Hash`) to one of our torrents.
 * "prefer" accepts rc4 and plaintext and picks plaintext when offered both; "require" accepts only rc4.
 */
export const respond = (
  conn: Tcp.Connection,
  lookup: (req2: Uint8Array) => InfoHashV1 | undefined,
  policy: Exclude<Policy, "off">,
  options: RespondOptions = {}
): Effect.Effect<Encrypted, MseError> =>
  Effect.suspend(() =>
    run(
      conn,
      Mse.responder({
        lookupInfoHash: lookup,
        cryptoAllowed: Mse.cryptoFor(policy)!,
        prefer: "plaintext",
        maxPadding: options.maxPadding,
        random: options.random
      }),
      options.prefix,
      options.timeout
    )
  )

// ---------------------------------------------------------------------------------------------------------------
// Outgoing connections with a policy

/** Addresses (`host:port`) known to speak only plain BitTorrent; bounded, oldest forgotten first. */
export interface PlainOnly {
  readonly has: (address: string) => boolean
  readonly add: (address: string) => void
  readonly delete: (address: string) => void
  readonly size: () => number
}

/** An in-memory `PlainOnly` (a client keeps one for all its torrents). */
export const plainOnlyMemory = (capacity = 4096): PlainOnly => {
  const set = new Set<string>()
  return {
    has: (a) => set.has(a),
    add: (a) => {
      set.delete(a)
      set.add(a)
      if (set.size > capacity) set.delete(set.values().next().value!)
    },
    delete: (a) => void set.delete(a),
    size: () => set.size
  }
}

export interface Outbound {
  readonly policy: Policy
  /** Shared memory of plain-only peers ("prefer"); without it every connection tries MSE first. */
  readonly plainOnly?: PlainOnly | undefined
}

/** The reasons that say the peer does not speak MSE at all (it never sent a key, or sent no valid one). */
const notMse = new Set<MseError["reason"]>(["closed", "timeout", "bad-public-key", "sync-not-found"])

export interface Connected {
  readonly connection: Tcp.Connection
  /** "none": plain BitTorrent, no MSE. */
  readonly cipher: Negotiated
  /** The IA that went out inside the handshake (then it must not be sent again), if any. */
  readonly sentInHandshake: Uint8Array | undefined
  /** Set when "prefer" fell back to plain after this MSE failure. */
  readonly fallback: MseError | undefined
}

export interface ConnectOptions extends HandshakeOptions {
  /** `host:port`, the key of `plainOnly`. */
  readonly address: string
  readonly infoHash: InfoHashV1
  readonly outbound: Outbound | undefined
  /** Opens one TCP connection (scoped: it closes with the caller's scope). */
  readonly dial: Effect.Effect<Tcp.Connection, Tcp.TcpError, Scope.Scope>
  /** IA for the MSE handshake (our BitTorrent handshake). */
  readonly initialPayload?: Uint8Array | undefined
}

/**
 * Dials under the policy (see the module comment). Fails with `TcpError` when a dial fails and with `MseError`
 * when "require" could not complete the handshake.
 */
export const connect = (
  options: ConnectOptions
): Effect.Effect<Connected, Tcp.TcpError | MseError, Scope.Scope> =>
  Effect.gen(function*() {
    const policy = options.outbound?.policy ?? "off"
    const memory = options.outbound?.plainOnly
    const plain = (fallback: MseError | undefined) =>
      Effect.map(options.dial, (connection): Connected => ({
        connection,
        cipher: "none",
        sentInHandshake: undefined,
        fallback
      }))
    if (policy === "off" || (policy === "prefer" && memory?.has(options.address) === true)) {
      return yield* plain(undefined)
    }
    // A shared secret with a leading zero byte is redialled with fresh keys (at most twice; each time 1 in 256):
    // libtorrent before its fix would refuse it (Mse.ts `rejectLeadingZeroSecret`).
    const attempt = (strict: boolean) =>
      Effect.flatMap(options.dial, (conn) =>
        Effect.map(
          Effect.either(initiate(conn, options.infoHash, policy, { ...options, rejectLeadingZeroSecret: strict })),
          (result) => ({ conn, result })
        ))
    let { conn, result } = yield* attempt(true)
    for (let redial = 0; redial < 2 && Either.isLeft(result) && result.left.reason === "leading-zero-secret"; redial++) {
      conn.close()
      ;({ conn, result } = yield* attempt(redial === 0))
    }
    if (Either.isRight(result)) {
      return {
        connection: result.right.connection,
        cipher: result.right.cipher,
        sentInHandshake: options.initialPayload,
        fallback: undefined
      }
    }
    conn.close()
    if (policy === "require") return yield* Effect.fail(result.left)
    if (notMse.has(result.left.reason)) memory?.add(options.address)
    return yield* plain(result.left)
  })
