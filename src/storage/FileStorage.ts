/**
 * The file layer of the `Storage` port: a torrent's files under one output directory.
 *
 * Descriptors: internal/DescriptorCache.ts owns every one (at most `maxOpenFiles`, LRU; its header says in three
 * sentences why none is used after close, closed twice or closed under an operation). Each read, write, sync and
 * fstat here pins its handle for exactly the duration of its system call. Waiting for a descriptor is
 * interruptible; a system call, once issued, is waited for (the caller's buffer stays in use until it returns).
 *
 * I/O: one positional write per data extent of a piece, in calls of at most `WRITE_CHUNK` bytes, short writes looped;
 * one extent's write per file at a time (the others queue in order: writes from several pieces to one file only
 * contend for its inode lock; one piece at a time cut the threadpool's CPU per GiB from 0.75–0.97 to 0.63–0.69 s
 * here). Writes are made inline, on the calling thread, while they are fast (internal/InlineIo.ts says why, and how a
 * slow disk sends them back to the pool), else through libuv's thread pool in callback form inside `Effect.async`
 * (THROUGHPUT.md rule 10), a write's calls up to `WRITES_IN_FLIGHT` at once. Reads always go through the pool, several
 * at once: inline reads made seeding 512 MiB to a libtorrent leecher 1.34 × slower (3 interleaved runs).
 *
 * Files and directories are created lazily, on the first write that lands in them; files that are not wanted and
 * pad files are never created. Nothing is ever zero-filled: a piece written at the end of a file leaves a hole
 * (sparse file). A file reaches its full length when its last extent is written, so no `ftruncate` is needed to
 * grow it; zero-length wanted files are created with the first write of the session. An existing file *longer*
 * than the torrent says is truncated to its length when first opened for writing (libtorrent does the same).
 *
 * Durability: `flush` fdatasyncs every file written since the last flush — through its cached descriptor, or a
 * fresh one when it was evicted meanwhile (the kernel's dirty pages belong to the file, not to the descriptor).
 *
 * We are the only writer: a file we write is fstat'ed before and after each write, and a change we did not make
 * (another inode at its path, a size below what we wrote, a change time that moved between our writes, a file
 * deleted while open) fails the storage with reason "changed"; `audit` checks the same of every file by path.
 * Failures of syncs and closes, I/O errors of writes and foreign changes are sticky: once one happened every later
 * operation fails with it (after a failed fdatasync the kernel may have dropped the dirty pages, so "retry" would
 * report success falsely). A full disk or a read-only file system fails only the write concerned. EBADF
 * anywhere is a bug ("internal"): reported, sticky, never ignored.
 *
 * Path guarantees (what is refused, with `StorageError` reason "unsafe-path" unless noted):
 * - Every file path is `outputDir` joined with its components, each of which must be a plain name (not "", ".",
 *   "..", and without "/" or NUL), and must resolve strictly inside `outputDir`. Checked for all files by `make`,
 *   before anything is touched; two files resolving to the same path are refused ("path-conflict").
 * - `outputDir` itself may be a symlink (the user chose it) and is created if missing (one `mkdir` per level:
 *   Node's recursive mkdir never calls back where mkdir says ENOENT, e.g. under /proc). Below it, before a file is
 *   opened, every directory on its path is checked with `lstat`: a symlink there is refused, a non-directory is
 *   "path-conflict"; missing directories are created by writes (`mkdir`, never following links) and make reads
 *   see an empty file. Checked directories are remembered for the storage's lifetime.
 * - The file itself is opened with `O_NOFOLLOW` (a symlink in its place is refused) and `O_NONBLOCK` (a FIFO can't
 *   hang the thread pool), then `fstat`ed: anything but a regular file is "path-conflict".
 * - Not covered: a process that swaps a checked directory for a symlink while we run (Node has no `openat` /
 *   `O_BENEATH` to close that race), and hard links, which are followed (users hard-link finished downloads).
 */
import * as Fs from "node:fs"
import * as Path from "node:path"
import * as Effect from "effect/Effect"
import * as Either from "effect/Either"
import * as Layer from "effect/Layer"
import type * as Scope from "effect/Scope"
import type { Hasher } from "./Hasher.ts"
import * as DescriptorCache from "./internal/DescriptorCache.ts"
import * as InlineIo from "./internal/InlineIo.ts"
import * as Storage from "./Storage.ts"
import * as Syscalls from "./Syscalls.ts"

export interface Options extends Storage.MakeOptions {
  readonly outputDir: string
  /** Most file descriptors kept open. Default 64. */
  readonly maxOpenFiles?: number | undefined
  /** The file-system calls (default `node:fs`). */
  readonly syscalls?: Syscalls.Syscalls | undefined
  /** Bytes per write call (default `WRITE_CHUNK`; tests make it small to interleave the calls of one write). */
  readonly writeChunk?: number | undefined
  /** Bytes per write call through the pool (default `writeChunk` when given, else `POOL_WRITE_CHUNK`). */
  readonly poolWriteChunk?: number | undefined
  /** Write calls in flight at once for one write through the pool (default `WRITES_IN_FLIGHT`; tests vary it). */
  readonly writesInFlight?: number | undefined
  /**
   * Inline writes (internal/InlineIo.ts): `enabled` (default true; false: every call through the pool), the time (ms)
   * an inline call may take before writes go to the pool (`slowMs`, default 10) and for how long (`backoffMs`,
   * default 30 s), and the clock (`now`, monotonic ms).
   */
  readonly inlineIo?: Partial<InlineIo.Options> | undefined
}

export interface FileStorage extends Storage.StorageShape {
  /** The resolved output directory. */
  readonly root: string
  /** Absolute path of file `file`. */
  readonly pathOf: (file: number) => string
  /** File descriptors open right now. */
  readonly openFiles: () => number
}

type Reason = Storage.Reason
type Handle = DescriptorCache.Handle

const unsafe = (path: string, detail: string) => new Storage.StorageError({ reason: "unsafe-path", path, detail })
const conflict = (path: string, detail: string) => new Storage.StorageError({ reason: "path-conflict", path, detail })
const closedError = (path: string) => new Storage.StorageError({ reason: "closed", path, detail: "storage closed" })
const changed = (path: string, detail: string) =>
  new Storage.StorageError({ reason: "changed", path, detail: `${detail} by something else while in use` })

/** `root` joined with `components` when every component is a plain name and the result lies inside `root`. */
export const resolvePath = (
  root: string,
  components: ReadonlyArray<string>
): Either.Either<string, Storage.StorageError> => {
  const shown = components.join("/")
  if (components.length === 0) return Either.left(unsafe(shown, "empty path"))
  for (const c of components) {
    if (c === "" || c === "." || c === ".." || c.includes("/") || c.includes("\0")) {
      return Either.left(unsafe(shown, `path component ${JSON.stringify(c)} is not a plain name`))
    }
  }
  const full = Path.join(root, ...components)
  const rel = Path.relative(root, full)
  if (rel === "" || rel === ".." || rel.startsWith(".." + Path.sep) || Path.isAbsolute(rel)) {
    return Either.left(unsafe(shown, `resolves outside ${root}`))
  }
  return Either.right(full)
}

const codeOf = (err: unknown): string =>
  typeof err === "object" && err !== null && "code" in err && typeof err.code === "string" ? err.code : ""

/**
 * Bytes per write system call: 32 KiB. ext4 (Linux 6.18) gives a buffered write page-cache folios as large as the
 * call, and on this VM the fresh pages of large folios are often far dearer to touch (its free-page reporting hands
 * the large free blocks back to the host; each page is then a fault in the host); folios of up to 32 KiB come from
 * the per-CPU lists of recently freed pages. libtorrent writes one 16 KiB block per `pwrite64` (`strace`) and stays
 * at ~1 s of system time per GiB in every state. Interleaved A/Bs (docs/PERFORMANCE.md): in a costly state, 16 KiB
 * calls against 128 KiB, 1 GiB, 6 runs: system time 0.83–0.94 s against 1.93–2.65, 0.72 × the wall, 0.66 × the
 * CPU (32 KiB: the same as 16 KiB within noise, 4 runs); in a cheap state, 512 MiB, 5 runs: 16 KiB calls 1.18 × the
 * CPU of 128 KiB ones (eight times the calls), 32 KiB 1.05 ×. A 1 MiB piece in one call: 2.1–2.6 sys s per GiB.
 */
export const WRITE_CHUNK = 32 * 1024

/**
 * Bytes per write call when writes go through libuv's pool (InlineIo sent them there: a disk that blocks, or one
 * that keeps up only slowly). Each pooled call is a round trip through a pool thread and the event loop: in 16 KiB calls that
 * cost 1 GiB downloads ~0.8 CPU s more (two slow runs of a full run with 16 KiB writes), so the pool keeps the
 * 128 KiB calls it had.
 */
export const POOL_WRITE_CHUNK = 128 * 1024

/**
 * Calls of one write issued at once (its chunks; the file's next write still waits for the whole of this one). One
 * at a time, each call's completion had to reach the main thread, busy with sockets during a download, before the
 * next went out: ~300 µs from issue to callback for ~70 µs in `pwrite`, and the writer of a one-file 1 GiB download
 * was busy 2.6–3.2 s of its 3.0–3.5 s while reading sat paused on the backlog for 1.5–2.1 s. Two at once: one is
 * copied while the next waits. Interleaved A/B against one at a time, 1 GiB, three benches: wall 0.90 / 0.92 / 0.90,
 * CPU 0.95 / 1.06 / 1.00. More gain nothing: the kernel copies one call at a time under the inode lock, and the
 * threads waiting for it spin (`rwsem_spin_on_owner`); 8 at once took 1.22 × the wall and 1.40 × the CPU of 2.
 * docs/PERFORMANCE.md, issue 16, 2026-12-05.
 */
export const WRITES_IN_FLIGHT = 2

/** The typed error of a failed system call `op` on `path`. */
export const fromErrno = (op: "open" | "mkdir" | "read" | "write" | "close", path: string, err: unknown): Storage.StorageError => {
  const code = codeOf(err)
  const reason: Reason = code === "ENOSPC" || code === "EDQUOT"
    ? "no-space"
    : code === "EROFS" || code === "EACCES" || code === "EPERM"
    ? "read-only"
    : code === "ELOOP"
    ? "unsafe-path"
    : code === "ENOTDIR" || code === "EISDIR" || code === "EEXIST"
    ? "path-conflict"
    : code === "EMFILE" || code === "ENFILE"
    ? "too-many-files"
    : code === "EBADF"
    ? "internal"
    : op === "close"
    ? "write"
    : op === "mkdir"
    ? "open"
    : op
  // Node says "ENOENT: no such file or directory, open '/the/path'": the path is said once, by the error itself.
  const text = (err instanceof Error ? err.message.split("\n")[0]! : String(err)).replace(/, \w+ '.*'$/, "")
  const detail = reason === "internal"
    ? `${op}: ${text} — a file descriptor was used after it was closed; this is a bug in effect-torrent, please report it`
    : reason === "too-many-files"
    ? `${op}: ${text} (raise the limit: ulimit -n)`
    : `${op}: ${text}`
  return new Storage.StorageError({ reason, path, detail, cause: err })
}

const { O_RDWR, O_RDONLY, O_CREAT, O_NOFOLLOW, O_NONBLOCK } = Fs.constants

/** The file storage under `outputDir`; descriptors are closed when the scope closes. */
export const make = (options: Options): Effect.Effect<FileStorage, Storage.StorageError, Hasher | Scope.Scope> =>
  Effect.gen(function*() {
    const layout = yield* Storage.layoutOf(options.files, options.pieceLength)
    const root = Path.resolve(options.outputDir)
    const sys = options.syscalls ?? Syscalls.node
    const writeChunk = Math.max(1, Math.floor(options.writeChunk ?? WRITE_CHUNK))
    const poolWriteChunk = Math.max(1, Math.floor(options.poolWriteChunk ?? options.writeChunk ?? POOL_WRITE_CHUNK))
    const writesInFlight = Math.max(1, Math.floor(options.writesInFlight ?? WRITES_IN_FLIGHT))
    const inlineIo = InlineIo.make(options.inlineIo)
    const fileCount = options.files.length

    // Every path is resolved and checked up front: an unsafe one refuses the whole storage before any I/O.
    const paths: Array<string> = []
    const seenPaths = new Set<string>()
    for (let f = 0; f < fileCount; f++) {
      const entry = options.files[f]!
      if (entry.pad) {
        paths.push("")
        continue
      }
      const p = yield* resolvePath(root, entry.path)
      if (seenPaths.has(p)) {
        return yield* conflict(p, "two files share this path")
      }
      seenPaths.add(p)
      paths.push(p)
    }
    const lengthOf = (f: number) => layout.starts[f + 1]! - layout.starts[f]!

    /** The first write, sync or close failure (or broken invariant): every later operation fails with it. */
    let failure: Storage.StorageError | undefined
    const stick = (e: Storage.StorageError): Storage.StorageError => {
      if (failure === undefined && e.reason !== "closed") failure = e
      return e
    }
    /**
     * Whether a failed write poisons the storage: an I/O error, a descriptor bug or a foreign change may have cost
     * data already written; a full disk, a read-only file system or a lack of descriptors cost only this write, so
     * flushing what was written before (and saving a resume record for it) still holds.
     */
    const lasting = (e: Storage.StorageError) =>
      e.reason !== "no-space" && e.reason !== "read-only" && e.reason !== "too-many-files" && e.reason !== "closed"
    const bug = (detail: string) =>
      stick(new Storage.StorageError({ reason: "internal", path: "", detail: `${detail}: a bug in effect-torrent` }))
    let closing = false

    /** What we last saw of each file we write (after our own latest change), to tell changes we did not make. */
    const seen: Array<Syscalls.Stat | undefined> = new Array(fileCount)
    /** Bumped whenever `seen[f]` moves (a write of ours ended), to tell a stat by path taken before it. */
    const seenMoves = new Uint32Array(fileCount)
    /** Files written since the last flush. */
    const dirty = new Set<number>()
    /** One write in flight per file; the next ones wait here in order. */
    const writing = new Uint8Array(fileCount)
    const waiting = new Map<number, Array<() => void>>()

    // --- directories and opening ---
    const verifiedDirs = new Set<string>()
    const statP = (path: string, follow: boolean) =>
      new Promise<Syscalls.Stat | undefined>((resolve, reject) =>
        (follow ? sys.stat : sys.lstat)(path, (err, st) =>
          err === null ? resolve(st) : err.code === "ENOENT" ? resolve(undefined) : reject(err)
        )
      )
    const mkdirP = (path: string) =>
      new Promise<void>((resolve, reject) =>
        sys.mkdir(path, (err) => (err === null || err.code === "EEXIST" ? resolve() : reject(err)))
      )
    const rejectWith = (e: Storage.StorageError): Promise<never> => Promise.reject(e)

    /** Checks (and with `create`, makes) every directory from `root` down to `dir`; false when one is missing. */
    const ensureDir = async (dir: string, create: boolean): Promise<boolean> => {
      if (verifiedDirs.has(dir)) return true
      if (!verifiedDirs.has(root)) {
        const st = await statP(root, true).catch((e) => rejectWith(fromErrno("open", root, e)))
        if (st === undefined) {
          if (!create) return false
          // One level at a time, from the deepest existing ancestor (symlinks above the root are the user's).
          const missing: Array<string> = []
          for (let d = root; Path.dirname(d) !== d; d = Path.dirname(d)) {
            const up = await statP(d, true).catch((e) => rejectWith(fromErrno("open", d, e)))
            if (up !== undefined) {
              if (up.kind !== "directory") return rejectWith(conflict(d, "not a directory"))
              break
            }
            missing.unshift(d)
          }
          for (const d of missing) await mkdirP(d).catch((e) => rejectWith(fromErrno("mkdir", d, e)))
        } else if (st.kind !== "directory") {
          return rejectWith(conflict(root, "not a directory"))
        }
        verifiedDirs.add(root)
      }
      const rel = Path.relative(root, dir)
      let p = root
      for (const part of rel === "" ? [] : rel.split(Path.sep)) {
        p = Path.join(p, part)
        if (verifiedDirs.has(p)) continue
        const dirPath = p
        let st = await statP(dirPath, false).catch((e) => rejectWith(fromErrno("open", dirPath, e)))
        if (st === undefined) {
          if (!create) return false
          await mkdirP(dirPath).catch((e) => rejectWith(fromErrno("mkdir", dirPath, e)))
          st = await statP(dirPath, false).catch((e) => rejectWith(fromErrno("open", dirPath, e)))
          if (st === undefined) {
            return rejectWith(new Storage.StorageError({ reason: "open", path: dirPath, detail: "directory vanished" }))
          }
        }
        if (st.kind === "symlink") return rejectWith(unsafe(dirPath, "a symlink is in the way of a directory"))
        if (st.kind !== "directory") return rejectWith(conflict(dirPath, "not a directory"))
        verifiedDirs.add(dirPath)
      }
      return true
    }

    const closeFd = (fd: number, f: number) => {
      try {
        sys.closeSync(fd)
      } catch (e) {
        stick(fromErrno("close", paths[f]!, e)) // EIO on close can mean lost data; EBADF is a bug
      }
    }
    const fstatOf = (fd: number, f: number): Syscalls.Stat | Storage.StorageError => {
      try {
        return sys.fstatSync(fd)
      } catch (e) {
        return stick(fromErrno("read", paths[f]!, e))
      }
    }
    /** A change we did not make, between what we saw last and `now` (both of file `f`), or undefined. */
    const foreignChange = (f: number, now: Syscalls.Stat, timeToo: boolean): Storage.StorageError | undefined => {
      const before = seen[f]
      if (before === undefined) return undefined
      const path = paths[f]!
      if (now.links === 0) return changed(path, "deleted")
      if (now.identity !== before.identity) return changed(path, "replaced")
      if (now.size < before.size) return changed(path, `truncated from ${before.size} to ${now.size} bytes`)
      if (timeToo && now.modified !== before.modified) return changed(path, "modified")
      return undefined
    }

    /** Opens file `f` for the cache (never cached here); fd undefined when reading a file that does not exist. */
    const openFd = async (f: number, writable: boolean): Promise<number | undefined> => {
      const path = paths[f]!
      if (!(await ensureDir(Path.dirname(path), writable))) return undefined
      // A file we have written before must still be there: not created again (that would hide its deletion).
      const create = writable && seen[f] === undefined
      const flags = (writable ? O_RDWR : O_RDONLY) | (create ? O_CREAT : 0) | O_NOFOLLOW | O_NONBLOCK
      const fd = await new Promise<number | undefined>((resolve, reject) =>
        sys.open(path, flags, 0o666, (err, fd) => {
          if (err === null) resolve(fd)
          else if (err.code === "ENOENT" && writable && !create) reject(stick(changed(path, "deleted")))
          else if (!writable && err.code === "ENOENT") resolve(undefined)
          else if (err.code === "ELOOP") reject(unsafe(path, "a symlink is in the way of the file"))
          else reject(fromErrno("open", path, err))
        })
      )
      if (fd === undefined) return undefined
      try {
        let st = fstatOf(fd, f)
        if (st instanceof Storage.StorageError) throw st
        if (st.kind !== "file") throw conflict(path, "not a regular file")
        if (writable) {
          const foreign = foreignChange(f, st, writing[f] === 0)
          if (foreign !== undefined) throw stick(foreign)
          if (seen[f] === undefined && st.size > lengthOf(f)) {
            await new Promise<void>((resolve, reject) =>
              sys.ftruncate(fd, lengthOf(f), (e) => {
                if (e === null) return resolve()
                const error = fromErrno("write", path, e)
                reject(lasting(error) ? stick(error) : error)
              })
            )
            st = fstatOf(fd, f)
            if (st instanceof Storage.StorageError) throw st
          }
          seen[f] = st
        }
        return fd
      } catch (e) {
        closeFd(fd, f)
        throw e
      }
    }

    const cache = DescriptorCache.make({
      capacity: options.maxOpenFiles ?? 64,
      open: (f, writable, cb) =>
        void openFd(f, writable).then(
          (fd) => cb(null, fd),
          (e) => cb(e instanceof Storage.StorageError ? e : fromErrno("open", paths[f]!, e), undefined)
        ),
      close: closeFd,
      closedError: (f) => closedError(paths[f]!),
      isTooMany: (e) => e.reason === "too-many-files",
      bug
    })

    /** A pinned handle of file `f` (undefined: reading a file that does not exist). Interruptible while waiting. */
    const acquire = (f: number, writable: boolean) =>
      Effect.async<Handle | undefined, Storage.StorageError>((resume) => {
        const r = cache.acquire(f, writable, (err, h) => resume(err === null ? Effect.succeed(h) : Effect.fail(err)))
        return Effect.sync(() => cache.cancel(r))
      })
    /** `use` of a pinned handle of `f`; the pin is the call's to give back (see `writeOn`, `readOn`). */
    const withHandle = <A>(
      f: number,
      writable: boolean,
      use: (h: Handle | undefined) => Effect.Effect<A, Storage.StorageError>
    ): Effect.Effect<A, Storage.StorageError> =>
      Effect.suspend(() => {
        if (failure !== undefined) return Effect.fail(failure)
        if (closing) return Effect.fail(closedError(paths[f]!))
        return Effect.uninterruptibleMask((restore) => Effect.flatMap(restore(acquire(f, writable)), use))
      })

    /** Writes all of `data` at `position` of file `f` through `h` (short writes looped), then unpins `h`. */
    const writeOn = (h: Handle, f: number, data: Uint8Array, position: number) =>
      Effect.async<void, Storage.StorageError>((resume) => {
        const path = paths[f]!
        const run = (): void => {
          writing[f] = 1
          let started = false
          const finish = (e: Storage.StorageError | undefined): void => {
            if (started && e?.reason !== "internal") {
              // What our write did (a failed one may have written part of its bytes) is ours: not a foreign change.
              const after = fstatOf(h.fd, f)
              if (after instanceof Storage.StorageError) e ??= after
              else {
                seen[f] = after
                seenMoves[f] = seenMoves[f]! + 1
              }
            }
            writing[f] = 0
            if (e === undefined) dirty.add(f)
            cache.release(h)
            resume(e === undefined ? Effect.void : Effect.fail(lasting(e) ? stick(e) : e))
            const next = waiting.get(f)?.shift()
            if (next !== undefined) next()
          }
          if (failure !== undefined) return finish(failure)
          if (closing) return finish(closedError(path)) // queued behind a write when the storage began closing
          const before = fstatOf(h.fd, f)
          if (before instanceof Storage.StorageError) return finish(before)
          const foreign = foreignChange(f, before, true)
          if (foreign !== undefined) return finish(foreign)
          started = true
          // Inline while the calls are fast; what a slow one leaves goes through the pool.
          const inline = writeInline(h, path, data, position)
          if (typeof inline !== "number") return finish(inline)
          if (inline === data.length && data.length > 0) return finish(undefined)
          // Up to `writesInFlight` calls at once (WRITES_IN_FLIGHT says why). The write ends when every call has
          // returned, even after one failed: the others still read `data`, which is the caller's again once we resume.
          let next = inline
          let inFlight = 0
          let error: Storage.StorageError | undefined
          const chunk = (at: number, end: number): void => {
            inFlight++
            sys.write(h.fd, data, at, end - at, position + at, (err, n) => {
              inFlight--
              if (err !== null) error ??= fromErrno("write", path, err)
              else if (n === 0) error ??= fromErrno("write", path, new Error("write made no progress"))
              else if (at + n < end && error === undefined) return chunk(at + n, end)
              pump()
            })
          }
          const pump = (): void => {
            while (error === undefined && inFlight < writesInFlight && next < data.length) {
              const at = next
              next = Math.min(data.length, at + poolWriteChunk)
              chunk(at, next)
            }
            if (inFlight === 0 && (error !== undefined || next >= data.length)) finish(error)
          }
          if (data.length === 0) finish(undefined)
          else pump()
        }
        if (writing[f] === 0) return run()
        let q = waiting.get(f)
        if (q === undefined) waiting.set(f, q = [])
        q.push(run)
      })

    /**
     * `data` at `position` through `h`, on this thread, in calls of `writeChunk` (short writes looped), while inline
     * I/O is on: the bytes written (all of them, or where a slow call stopped it), or the error.
     */
    const writeInline = (h: Handle, path: string, data: Uint8Array, position: number): number | Storage.StorageError => {
      let at = 0
      while (at < data.length && inlineIo.inline()) {
        const started = inlineIo.now()
        let n = 0
        try {
          n = sys.writeSync(h.fd, data, at, Math.min(writeChunk, data.length - at), position + at)
        } catch (err) {
          return fromErrno("write", path, err)
        } finally {
          inlineIo.done(started, n)
        }
        if (n === 0) return fromErrno("write", path, new Error("write made no progress"))
        at += n
      }
      return at
    }

    /** Reads into `into` from `position` until full or end of file, then unpins `h`; returns the bytes read. */
    const readOn = (h: Handle, f: number, into: Uint8Array, position: number) =>
      Effect.async<number, Storage.StorageError>((resume) => {
        let done = 0
        const step = (): void =>
          sys.read(h.fd, into, done, into.length - done, position + done, (err, n) => {
            if (err !== null) {
              cache.release(h)
              const e = fromErrno("read", paths[f]!, err)
              return resume(Effect.fail(e.reason === "internal" ? stick(e) : e))
            }
            done += n
            if (n > 0 && done < into.length) return step()
            cache.release(h)
            resume(Effect.succeed(done))
          })
        if (into.length === 0) {
          cache.release(h)
          resume(Effect.succeed(0))
        } else step()
      })

    /** fdatasync of every handle (pinned by the caller); each is unpinned as its call returns. */
    const syncAll = (handles: ReadonlyArray<Handle>) =>
      Effect.async<void, Storage.StorageError>((resume) => {
        let left = handles.length
        let error: Storage.StorageError | undefined
        if (left === 0) return resume(Effect.void)
        for (const h of handles) {
          sys.fdatasync(h.fd, (err) => {
            cache.release(h)
            if (err !== null && error === undefined) error = stick(fromErrno("write", paths[h.file]!, err))
            if (--left === 0) resume(error === undefined ? Effect.void : Effect.fail(error))
          })
        }
      })

    const write = (f: number, offset: number, data: Uint8Array) =>
      withHandle(f, true, (h) => writeOn(h!, f, data, offset))

    const read = (f: number, offset: number, into: Uint8Array) =>
      withHandle(f, false, (h) => (h === undefined ? Effect.succeed(0) : readOn(h, f, into, offset)))

    const touch = (f: number) => withHandle(f, true, (h) => Effect.sync(() => cache.release(h!)))

    const lstatE = (path: string) =>
      Effect.async<Syscalls.Stat | undefined, Storage.StorageError>((resume) =>
        sys.lstat(path, (err, st) =>
          resume(
            err === null
              ? Effect.succeed(st)
              : err.code === "ENOENT"
              ? Effect.succeed(undefined)
              : Effect.fail(fromErrno("read", path, err))
          )
        )
      )

    const size = (f: number) =>
      Effect.gen(function*() {
        const path = paths[f]!
        if (failure !== undefined) return yield* failure
        if (closing) return yield* closedError(path)
        const present = yield* Effect.tryPromise({
          try: () => ensureDir(Path.dirname(path), false),
          catch: (e) => (e instanceof Storage.StorageError ? e : fromErrno("read", path, e))
        })
        if (!present) return -1
        const st = yield* lstatE(path)
        if (st === undefined) return -1
        if (st.kind === "symlink") return yield* unsafe(path, "a symlink is in the way of the file")
        if (st.kind !== "file") return yield* conflict(path, "not a regular file")
        return st.size
      })

    /** inode, size, mtime and ctime (ns) of the cached descriptor when there is one (what reads use), else of the path. */
    const version = (f: number): Effect.Effect<string | undefined> =>
      Effect.suspend(() => {
        if (closing || failure !== undefined) return Effect.succeed(undefined)
        const h = cache.peek(f)
        if (h !== undefined) {
          const st = fstatOf(h.fd, f) // synchronous: the cached descriptor cannot be closed under it
          return Effect.succeed(st instanceof Storage.StorageError ? undefined : st.version)
        }
        return Effect.async<string | undefined>((resume) =>
          sys.lstat(paths[f]!, (err, st) => resume(Effect.succeed(err === null ? st.version : undefined)))
        )
      })

    // One flush at a time: a flush that found nothing dirty must still wait for the syncs of one begun before it.
    const flushLock = yield* Effect.makeSemaphore(1)
    const flush = flushLock.withPermits(1)(Effect.suspend(() => {
      if (failure !== undefined) return Effect.fail(failure)
      const files = [...dirty]
      dirty.clear()
      // Cached descriptors are pinned now, in this synchronous step, and synced together; files whose descriptor
      // was evicted since they were written get a fresh one, one at a time.
      const pinned: Array<Handle> = []
      const evicted: Array<number> = []
      for (const f of files) {
        const h = cache.pinCached(f)
        if (h !== undefined) pinned.push(h)
        else evicted.push(f)
      }
      const reopenAndSync = (f: number) =>
        withHandle(f, false, (h) => (h === undefined ? Effect.fail(stick(changed(paths[f]!, "deleted"))) : syncAll([h])))
      return Effect.zipRight(
        syncAll(pinned),
        Effect.forEach(evicted, reopenAndSync, { discard: true })
      ).pipe(
        Effect.tapError(() =>
          Effect.sync(() => {
            for (const f of files) dirty.add(f)
          })
        ),
        // Out of descriptors: what follows a flush (the resume record's temp file) needs one more than we do.
        Effect.ensuring(Effect.sync(() => cache.underPressure() && cache.shedIdle()))
      )
    }))

    const audit = (complete: (file: number) => boolean) =>
      Effect.forEach(
        Array.from({ length: fileCount }, (_, f) => f),
        (f) =>
          Effect.gen(function*() {
            const expectWhole = complete(f) && (options.wanted?.(f) ?? true)
            if (paths[f] === "" || (seen[f] === undefined && !expectWhole)) return
            const path = paths[f]!
            // A write of ours that ends while the lstat runs moves `seen` past what it saw (a file "shorter" than
            // we wrote is then only older): stat again; if our writes keep racing it, its size proves nothing.
            let moved = seenMoves[f]
            let st = yield* lstatE(path)
            for (let tries = 0; tries < 4 && seenMoves[f] !== moved; tries++) {
              moved = seenMoves[f]
              st = yield* lstatE(path)
            }
            const raced = seenMoves[f] !== moved
            if (st === undefined) {
              return yield* stick(changed(path, "deleted"))
            }
            if (st.kind !== "file") return yield* stick(changed(path, "replaced with something that is not a file"))
            if (seen[f] !== undefined) {
              const foreign = raced
                ? (st.identity !== seen[f]!.identity ? changed(path, "replaced") : undefined)
                : foreignChange(f, st, false)
              if (foreign !== undefined) return yield* stick(foreign)
            }
            if (expectWhole && st.size !== lengthOf(f)) {
              return yield* stick(changed(path, `cut to ${st.size} of its ${lengthOf(f)} bytes`))
            }
          }),
        { concurrency: 16, discard: true }
      ).pipe(Effect.zipLeft(Effect.suspend(() => (failure !== undefined ? Effect.fail(failure) : Effect.void))))

    yield* Effect.addFinalizer(() =>
      Effect.async<void>((resume) => {
        closing = true
        cache.close(() => resume(Effect.void))
      })
    )

    const backend: Storage.Backend = { write, read, size, touch, flush, version, audit }
    const storage = yield* Storage.make(backend, layout, options)
    return { ...storage, root, pathOf: (f: number) => paths[f]!, openFiles: cache.openCount }
  })

/** The file storage as a scoped layer. */
export const layer = (options: Options): Layer.Layer<Storage.Storage, Storage.StorageError, Hasher> =>
  Layer.scoped(Storage.Storage, make(options))
