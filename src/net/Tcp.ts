/**
 * TCP connections for peer sessions: dial and accept, as scoped resources, with a synchronous byte path.
 *
 * Decision: this wraps `node:net` by hand instead of `NodeSocket.makeNet` (STACK.md §2, THROUGHPUT.md rule 1).
 * makeNet's `run` reconnects on every call and its `writer` waits for each write's callback; it has no way to pause
 * reading; and sockets accepted through `NodeSocketServer` reach the handler as a `Socket` whose `net.Socket` is only
 * reachable through a context tag that leaks into `R`. A peer session needs the opposite of each: one connection,
 * fire-and-forget coalesced writes, `pause()`/`resume()` for backpressure when the hash/write backlog is over budget,
 * and one type for dialled and accepted sockets. The wrapper is the raw `'data'` handler THROUGHPUT.md measured as
 * the ceiling; Effect owns only the lifecycle (acquire/release, connect timeout, `closed`).
 *
 * - Reading: `onData(handler)` installs a synchronous handler (returning `void`). Node delivers nothing until it is
 *   installed, so bytes that arrive before are kept by the socket, not lost.
 * - Writing: `write(bytes, written?)` queues and returns at once; everything queued in the same tick goes out as one
 *   corked batch (one `writev`). Write errors surface through `closed`. `written` runs once the socket no longer
 *   holds `bytes` (the kernel took them, or the connection closed while libuv had them: Node then reports
 *   success too, and the memory is free either way), so the caller may reuse the memory then. It may never run
 *   (bytes queued when the connection closed, a write error): such memory is simply not reused.
 * - `closed` completes when the connection ends (remote FIN or our `close`), fails with `TcpError` on a socket error.
 * - Scoped: the socket is destroyed when the scope closes, whatever the exit.
 */
import * as Net from "node:net"
import * as Data from "effect/Data"
import * as Deferred from "effect/Deferred"
import type * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Exit from "effect/Exit"
import * as FiberId from "effect/FiberId"
import * as Mailbox from "effect/Mailbox"
import * as Scope from "effect/Scope"

export class TcpError extends Data.TaggedError("TcpError")<{
  readonly reason: "connect-failed" | "connect-timeout" | "listen-failed" | "socket"
  /** `host:port` of the remote (or local, for `listen-failed`) end. */
  readonly address: string
  readonly cause: unknown
}> {
  override get message(): string {
    const detail = this.cause instanceof Error ? this.cause.message : String(this.cause)
    return `tcp ${this.reason} (${this.address}): ${detail}`
  }
}

export interface Address {
  readonly host: string
  readonly port: number
}

/** One TCP connection, dialled or accepted. Every method is synchronous and safe to call after close (no-op). */
export interface Connection {
  /** `host:port` of the remote end (IPv6 hosts in brackets). */
  readonly remoteAddress: string
  readonly remote: Address
  /** Installs (or replaces) the synchronous chunk handler. Chunks are Node Buffers: views, valid during the call. */
  readonly onData: (handler: (chunk: Uint8Array) => void) => void
  /**
   * Queues bytes; all writes of one tick leave as one batch. The caller must not modify `bytes` until `written`
   * runs (once the socket no longer holds them; it may never run, e.g. when the connection closed first), or ever
   * when it passes none. Wrappers may ignore `written` (never calling it): the caller then never reuses.
   */
  readonly write: (bytes: Uint8Array, written?: () => void) => void
  /** Stops reading (no more `onData` calls) until `resume`; TCP flow control then slows the sender. */
  readonly pause: () => void
  readonly resume: () => void
  readonly isPaused: () => boolean
  /** Destroys the socket (pending writes are flushed first when possible). */
  readonly close: () => void
  /** Completes when the connection has ended or been closed; fails with `TcpError` on a socket error. */
  readonly closed: Effect.Effect<void, TcpError>
  /** Bytes read and written so far. */
  readonly bytesRead: () => number
  readonly bytesWritten: () => number
  /**
   * Bytes queued by `write` that the kernel has not taken yet (they pile up when the peer does not read). Optional
   * so that wrappers (e.g. an encrypting one) need not provide it; without it no write budget is enforced.
   */
  readonly writeBacklog?: () => number
  /** What carries the bytes: "utp" for a BEP 29 connection (UtpSocket.ts); absent: TCP. */
  readonly transport?: "tcp" | "utp" | undefined
}

const formatAddress = (host: string, port: number): string =>
  host.includes(":") ? `[${host}]:${port}` : `${host}:${port}`

/**
 * Dialled sockets read straight into one buffer shared by every connection (`onread`), instead of a fresh 64 KiB
 * Buffer per read: no allocation or GC per chunk, and up to 256 KiB per read. Safe because handlers run one at a time
 * on this thread and `onData` chunks are views valid only during the call (the frame decoder copies what it keeps).
 */
const READ_BUFFER_SIZE = 256 * 1024
let sharedReadBuffer: Buffer | undefined
const readBuffer = (): Buffer => (sharedReadBuffer ??= Buffer.allocUnsafe(READ_BUFFER_SIZE))

/** Sockets made with `onread` deliver chunks through this hook instead of `'data'`. */
type ReadHook = { handler: ((chunk: Buffer) => void) | undefined }

/** Wraps a connected `net.Socket`. Returns the connection and its release action. */
const wrap = (
  socket: Net.Socket,
  remote: Address,
  readHook?: ReadHook
): { conn: Connection; release: Effect.Effect<void> } => {
  const remoteAddress = formatAddress(remote.host, remote.port)
  const closed = Deferred.unsafeMake<void, TcpError>(FiberId.none)
  let handler: ((chunk: Uint8Array) => void) | undefined
  let queue: Array<Uint8Array> = []
  /** `written` callbacks of `queue`, same indices (undefined: none). */
  let callbacks: Array<(() => void) | undefined> = []
  let queued = 0
  let flushScheduled = false
  let paused = false
  let isClosed = false
  socket.setNoDelay(true)

  const finish = (exit: Exit.Exit<void, TcpError>) => {
    isClosed = true
    Deferred.unsafeDone(closed, exit)
  }
  socket.on("error", (cause) => finish(Exit.fail(new TcpError({ reason: "socket", address: remoteAddress, cause }))))
  socket.on("end", () => {
    finish(Exit.void)
    socket.destroy()
  })
  socket.on("close", () => finish(Exit.void))
  const onData = (chunk: Buffer) => handler?.(chunk)

  /**
   * Node's write callback: `written` on success (also what Node reports for a write libuv cancelled because the
   * socket was destroyed: it no longer holds the memory); not on an error (a chunk still in Node's own buffer).
   */
  const after = (written: () => void) => (error?: Error | null) => {
    if (error === undefined || error === null) written()
  }
  const writeOne = (bytes: Uint8Array, written: (() => void) | undefined) => {
    if (written === undefined) socket.write(bytes)
    else socket.write(bytes, after(written))
  }
  const flush = () => {
    flushScheduled = false
    const q = queue
    const cbs = callbacks
    queue = []
    callbacks = []
    queued = 0
    if (isClosed || socket.destroyed || q.length === 0) return
    if (q.length === 1) {
      writeOne(q[0]!, cbs[0])
      return
    }
    socket.cork()
    for (let i = 0; i < q.length; i++) writeOne(q[i]!, cbs[i])
    socket.uncork()
  }

  const conn: Connection = {
    remoteAddress,
    remote,
    onData: (h) => {
      if (handler === undefined && !isClosed) {
        handler = h
        if (readHook !== undefined) readHook.handler = onData
        else socket.on("data", onData)
        // Accepted sockets start paused (pauseOnConnect); a dialled one starts flowing on the first listener.
        if (paused) socket.pause()
        else socket.resume()
      } else handler = h
    },
    write: (bytes, written) => {
      if (isClosed || bytes.length === 0) return
      queue.push(bytes)
      callbacks.push(written)
      queued += bytes.length
      if (!flushScheduled) {
        flushScheduled = true
        process.nextTick(flush)
      }
    },
    pause: () => {
      paused = true
      socket.pause()
    },
    resume: () => {
      paused = false
      if (handler !== undefined) socket.resume()
    },
    isPaused: () => paused,
    close: () => {
      if (!socket.destroyed) {
        flush()
        socket.destroy()
      }
      finish(Exit.void)
    },
    closed: Deferred.await(closed),
    bytesRead: () => socket.bytesRead,
    bytesWritten: () => socket.bytesWritten,
    writeBacklog: () => queued + socket.writableLength
  }
  return { conn, release: Effect.sync(() => conn.close()) }
}

export interface DialOptions extends Address {
  /** Connect deadline (default 5 seconds); `TcpError` "connect-timeout" past it. */
  readonly timeout?: Duration.DurationInput | undefined
}

/** Opens a connection that lives until the scope closes. */
export const dial = (options: DialOptions): Effect.Effect<Connection, TcpError, Scope.Scope> => {
  const address = formatAddress(options.host, options.port)
  return Effect.acquireRelease(
    Effect.async<{ conn: Connection; release: Effect.Effect<void> }, TcpError>((resume) => {
      const hook: ReadHook = { handler: undefined }
      const socket = Net.createConnection({
        host: options.host,
        port: options.port,
        onread: {
          buffer: readBuffer,
          callback: (n: number, buf: Uint8Array) => {
            hook.handler?.(buf.subarray(0, n) as Buffer)
            return true
          }
        }
      })
      // Nothing is read until `onData` installs a handler (reading starts on `resume`).
      socket.pause()
      const onError = (cause: unknown) => {
        socket.destroy()
        resume(Effect.fail(new TcpError({ reason: "connect-failed", address, cause })))
      }
      socket.once("error", onError)
      socket.once("connect", () => {
        socket.off("error", onError)
        resume(Effect.succeed(wrap(socket, { host: options.host, port: options.port }, hook)))
      })
      // Interruption (the timeout below, or the caller) destroys the half-open socket.
      return Effect.sync(() => socket.destroy())
    }).pipe(
      Effect.timeoutFail({
        duration: options.timeout ?? "5 seconds",
        onTimeout: () => new TcpError({ reason: "connect-timeout", address, cause: new Error("connect timed out") })
      })
    ),
    (w) => w.release
  ).pipe(Effect.map((w) => w.conn))
}

/** Adopts an already connected socket (e.g. from another listener) into the current scope. */
export const fromSocket = (socket: Net.Socket): Effect.Effect<Connection, never, Scope.Scope> =>
  Effect.acquireRelease(
    Effect.sync(() => wrap(socket, { host: socket.remoteAddress ?? "?", port: socket.remotePort ?? 0 })),
    (w) => w.release
  ).pipe(Effect.map((w) => w.conn))

export interface ListenOptions {
  /** Default "0.0.0.0". */
  readonly host?: string | undefined
  /** 0 (the default) picks a free port; read it from `Listener.address`. */
  readonly port?: number | undefined
  /** Inbound connections waiting for `accept`; more are refused (destroyed). Default 64. */
  readonly backlog?: number | undefined
}

export interface Listener {
  readonly address: Address
  /**
   * The next inbound connection, owned by the caller's scope from then on. Fails with `TcpError` only when the
   * listener itself failed; waits while none is pending.
   */
  readonly accept: Effect.Effect<Connection, TcpError, Scope.Scope>
}

/** A listening socket for the lifetime of the scope; closing it also destroys connections never accepted. */
export const listen = (options: ListenOptions = {}): Effect.Effect<Listener, TcpError, Scope.Scope> =>
  Effect.gen(function*() {
    const host = options.host ?? "0.0.0.0"
    const backlog = options.backlog ?? 64
    const pending = yield* Mailbox.make<Net.Socket, TcpError>()
    let waiting = 0
    const server = yield* Effect.acquireRelease(
      Effect.async<Net.Server, TcpError>((resume) => {
        const s = Net.createServer({ pauseOnConnect: true, noDelay: true })
        const address = formatAddress(host, options.port ?? 0)
        const onError = (cause: unknown) =>
          resume(Effect.fail(new TcpError({ reason: "listen-failed", address, cause })))
        s.once("error", onError)
        s.listen(options.port ?? 0, host, () => {
          s.off("error", onError)
          resume(Effect.succeed(s))
        })
      }),
      (s) =>
        Effect.gen(function*() {
          // `clear` fails only once the mailbox is done and empty (the listener's error, already given to
          // `accept`): then nothing is left to destroy.
          const left = yield* pending.clear.pipe(Effect.orElseSucceed(() => []))
          for (const sock of left) sock.destroy()
          yield* pending.shutdown
          yield* Effect.async<void>((resume) => {
            // The only error `close` reports is a server not running: closed twice, a bug.
            s.close((error) => resume(error === undefined || error === null ? Effect.void : Effect.die(error)))
          })
        })
    )
    server.on("connection", (sock) => {
      // A connection nobody will accept is destroyed at once: past the backlog, and once the mailbox is done (the
      // listener failed, e.g. accept hit EMFILE, or it is closing). It used to be offered anyway, and a refused
      // offer left the socket open forever (its descriptor leaked, and `server.close` waited for it).
      if (waiting >= backlog || !pending.unsafeOffer(sock)) {
        sock.destroy()
        return
      }
      waiting++
    })
    server.on("error", (cause) => {
      pending.unsafeDone(Exit.fail(new TcpError({ reason: "listen-failed", address: formatAddress(host, 0), cause })))
    })
    const info = server.address() as Net.AddressInfo
    const accept: Effect.Effect<Connection, TcpError, Scope.Scope> = Effect.uninterruptibleMask((restore) =>
      restore(pending.take).pipe(
        Effect.catchTag("NoSuchElementException", () =>
          Effect.fail(
            new TcpError({ reason: "listen-failed", address: formatAddress(host, info.port), cause: "listener closed" })
          )),
        Effect.flatMap((sock) => {
          waiting--
          return fromSocket(sock)
        })
      )
    )
    return { address: { host: info.address, port: info.port }, accept }
  })
