/**
 * The file layer of the `Storage` port: a torrent's files under one output directory.
 *
 * I/O: one positional `fs.write` per data extent of a piece (callback form inside `Effect.async`, short writes
 * looped; THROUGHPUT.md rule 10), at most one in flight per file (the others queue in order: concurrent buffered
 * writes to one file only contend for its inode lock; one at a time cut the threadpool's CPU per GiB from
 * 0.75–0.97 to 0.63–0.69 s here), `fs.read` the same way for reads but concurrently. Each operation is
 * uninterruptible while the syscall is in flight, so an fd is never closed (and its number reused) under a pending
 * read or write.
 *
 * Files and directories are created lazily, on the first write that lands in them; files that are not wanted and
 * pad files are never created. Nothing is ever zero-filled: a piece written at the end of a file leaves a hole
 * (sparse file). A file reaches its full length when its last extent is written, so no `ftruncate` is needed to
 * grow it; zero-length wanted files are created with the first write of the session. An existing file *longer*
 * than the torrent says is truncated to its length when first opened for writing (libtorrent does the same).
 *
 * Open files: an LRU of at most `maxOpenFiles` descriptors (default 64); evicted descriptors close at once, or
 * when the last operation using them finishes. All close when the scope closes. `flush` fdatasyncs files written
 * since the last flush that are still open; a descriptor evicted or closed before that is not synced (the resume
 * check re-verifies data after a crash anyway).
 *
 * Path guarantees (what is refused, with `StorageError` reason "unsafe-path" unless noted):
 * - Every file path is `outputDir` joined with its components, each of which must be a plain name (not "", ".",
 *   "..", and without "/" or NUL), and must resolve strictly inside `outputDir`. Checked for all files by `make`,
 *   before anything is touched; two files resolving to the same path are refused ("path-conflict").
 * - `outputDir` itself may be a symlink (the user chose it) and is created if missing. Below it, before a file is
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
import * as Storage from "./Storage.ts"
import * as Syscalls from "./Syscalls.ts"

export interface Options extends Storage.MakeOptions {
  readonly outputDir: string
  /** Most file descriptors kept open. Default 64. */
  readonly maxOpenFiles?: number | undefined
  /** The file-system calls (default `node:fs`). */
  readonly syscalls?: Syscalls.Syscalls | undefined
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

const unsafe = (path: string, detail: string) => new Storage.StorageError({ reason: "unsafe-path", path, detail })
const conflict = (path: string, detail: string) => new Storage.StorageError({ reason: "path-conflict", path, detail })
const closedError = (path: string) => new Storage.StorageError({ reason: "closed", path, detail: "storage closed" })

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

/**
 * `mkdir -p`. Node 20's recursive mkdir reports ENOENT where a plain mkdir says EROFS (a read-only file system), so
 * on ENOENT the missing directories are made one by one from the deepest existing one, for the real error.
 */
const mkdirp = async (sys: Syscalls.Syscalls, dir: string): Promise<void> => {
  const missing: Array<string> = []
  for (let d = dir;; d = Path.dirname(d)) {
    const exists = await new Promise<boolean>((ok, no) =>
      sys.stat(d, (err) => (err === null ? ok(true) : err.code === "ENOENT" ? ok(false) : no(err)))
    )
    if (exists) break
    missing.unshift(d)
    if (Path.dirname(d) === d) break
  }
  for (const d of missing) {
    await new Promise<void>((ok, no) => sys.mkdir(d, (e) => (e === null || e.code === "EEXIST" ? ok() : no(e))))
  }
}

const codeOf = (err: unknown): string =>
  typeof err === "object" && err !== null && "code" in err && typeof err.code === "string" ? err.code : ""

const fromErrno = (op: Reason, path: string, err: unknown): Storage.StorageError => {
  const code = codeOf(err)
  const reason: Reason = code === "ENOSPC" || code === "EDQUOT"
    ? "no-space"
    : code === "EROFS" || code === "EACCES" || code === "EPERM"
    ? "read-only"
    : code === "ELOOP"
    ? "unsafe-path"
    : code === "ENOTDIR" || code === "EISDIR" || code === "EEXIST"
    ? "path-conflict"
    : op
  const text = err instanceof Error ? err.message.split("\n")[0]! : String(err)
  return new Storage.StorageError({ reason, path, detail: `${op}: ${text}`, cause: err })
}

interface Handle {
  readonly file: number
  readonly fd: number
  readonly writable: boolean
  refs: number
  evicted: boolean
  dirty: boolean
  /** A write is in flight on this descriptor; later ones wait in `waiting` (see `pwriteSerial`). */
  writing: boolean
  readonly waiting: Array<() => void>
}

/**
 * Writes all of `data` at `position` (short writes looped), one write at a time per descriptor, in arrival order.
 * Buffered writes to one file take its inode lock, so several in flight (up to `finishConcurrency` pieces finish
 * at once) only spin on it in the threadpool. Plain callbacks: no runtime operations are added per write.
 */
const pwriteSerial = (sys: Syscalls.Syscalls, h: Handle, data: Uint8Array, position: number) =>
  Effect.async<void, unknown>((resume) => {
    const run = (): void => {
      h.writing = true
      let done = 0
      const finish = (r: Effect.Effect<void, unknown>): void => {
        h.writing = false
        resume(r)
        h.waiting.shift()?.()
      }
      const step = (): void => {
        try {
          sys.write(h.fd, data, done, data.length - done, position + done, (err, n) => {
            if (err !== null) return finish(Effect.fail(err))
            if (n === 0) return finish(Effect.fail(new Error("write made no progress")))
            done += n
            if (done < data.length) step()
            else finish(Effect.void)
          })
        } catch (e) {
          finish(Effect.fail(e)) // never leave `writing` set: the writes queued behind would wait forever
        }
      }
      if (data.length === 0) finish(Effect.void)
      else step()
    }
    if (h.writing) h.waiting.push(run)
    else run()
  })

/** Reads until `into` is full or end of file; returns the bytes read. */
const preadAll = (sys: Syscalls.Syscalls, fd: number, into: Uint8Array, position: number) =>
  Effect.async<number, unknown>((resume) => {
    let done = 0
    const step = (): void =>
      sys.read(fd, into, done, into.length - done, position + done, (err, n) => {
        if (err !== null) return resume(Effect.fail(err))
        done += n
        if (n > 0 && done < into.length) step()
        else resume(Effect.succeed(done))
      })
    if (into.length === 0) resume(Effect.succeed(0))
    else step()
  })

const lstatOrUndefined = (sys: Syscalls.Syscalls, path: string) =>
  Effect.async<Syscalls.Stat | undefined, unknown>((resume) =>
    sys.lstat(path, (err, st) =>
      resume(err === null ? Effect.succeed(st) : err.code === "ENOENT" ? Effect.succeed(undefined) : Effect.fail(err))
    )
  )

const { O_RDWR, O_RDONLY, O_CREAT, O_NOFOLLOW, O_NONBLOCK } = Fs.constants

/** The file storage under `outputDir`; descriptors are closed when the scope closes. */
export const make = (options: Options): Effect.Effect<FileStorage, Storage.StorageError, Hasher | Scope.Scope> =>
  Effect.gen(function*() {
    const layout = yield* Storage.layoutOf(options.files, options.pieceLength)
    const root = Path.resolve(options.outputDir)
    const maxOpen = Math.max(1, Math.floor(options.maxOpenFiles ?? 64))
    const sys = options.syscalls ?? Syscalls.node

    // Every path is resolved and checked up front: an unsafe one refuses the whole storage before any I/O.
    const paths: Array<string> = []
    const seen = new Set<string>()
    for (let f = 0; f < options.files.length; f++) {
      const entry = options.files[f]!
      if (entry.pad) {
        paths.push("")
        continue
      }
      const p = yield* resolvePath(root, entry.path)
      if (seen.has(p)) {
        return yield* conflict(p, "two files share this path")
      }
      seen.add(p)
      paths.push(p)
    }
    const lengthOf = (f: number) => layout.starts[f + 1]! - layout.starts[f]!

    const cache = new Map<number, Handle>() // insertion order = LRU order, oldest first
    const verifiedDirs = new Set<string>()
    const openLock = yield* Effect.makeSemaphore(1)
    let openCount = 0
    let closed = false

    // Synchronous close: cheap for regular files, and the descriptor bound then holds exactly.
    const closeFd = (h: Handle) => {
      openCount--
      try {
        sys.closeSync(h.fd)
      } catch {
        // EBADF/EIO on close: nothing left to do with this descriptor
      }
    }
    const evict = (h: Handle) => {
      cache.delete(h.file)
      h.evicted = true
      if (h.refs === 0) closeFd(h)
    }

    /** Checks (and with `create`, makes) every directory from `root` down to `dir`; false when one is missing. */
    const ensureDir = Effect.fnUntraced(function*(dir: string, create: boolean) {
      if (verifiedDirs.has(dir)) return true
      if (!verifiedDirs.has(root)) {
        const st = yield* Effect.async<Syscalls.Stat | undefined, unknown>((resume) =>
          sys.stat(root, (err, st) =>
            resume(err === null ? Effect.succeed(st) : err.code === "ENOENT" ? Effect.succeed(undefined) : Effect.fail(err))
          )
        ).pipe(Effect.mapError((e) => fromErrno("open", root, e)))
        if (st === undefined) {
          if (!create) return false
          yield* Effect.tryPromise({ try: () => mkdirp(sys, root), catch: (e) => fromErrno("open", root, e) })
        } else if (st.kind !== "directory") {
          return yield* conflict(root, "not a directory")
        }
        verifiedDirs.add(root)
      }
      const rel = Path.relative(root, dir)
      let p = root
      for (const part of rel === "" ? [] : rel.split(Path.sep)) {
        p = Path.join(p, part)
        if (verifiedDirs.has(p)) continue
        const dirPath = p
        let st = yield* Effect.mapError(lstatOrUndefined(sys, dirPath), (e) => fromErrno("open", dirPath, e))
        if (st === undefined) {
          if (!create) return false
          yield* Effect.async<void, unknown>((resume) =>
            sys.mkdir(dirPath, (err) => resume(err === null ? Effect.void : Effect.fail(err)))
          ).pipe(
            Effect.catchIf((e) => codeOf(e) === "EEXIST", () => Effect.void),
            Effect.mapError((e) => fromErrno("open", dirPath, e))
          )
          st = yield* Effect.mapError(lstatOrUndefined(sys, dirPath), (e) => fromErrno("open", dirPath, e))
          if (st === undefined) {
            return yield* new Storage.StorageError({ reason: "open", path: dirPath, detail: "directory vanished" })
          }
        }
        if (st.kind === "symlink") return yield* unsafe(dirPath, "a symlink is in the way of a directory")
        if (st.kind !== "directory") {
          return yield* conflict(dirPath, "not a directory")
        }
        verifiedDirs.add(dirPath)
      }
      return true
    })

    /** Opens file `f` without caching it; undefined when reading a file that does not exist. */
    const openFd = Effect.fnUntraced(function*(f: number, writable: boolean) {
      const path = paths[f]!
      if (!(yield* ensureDir(Path.dirname(path), writable))) return undefined
      const flags = (writable ? O_RDWR | O_CREAT : O_RDONLY) | O_NOFOLLOW | O_NONBLOCK
      const fd = yield* Effect.async<number | undefined, Storage.StorageError>((resume) =>
        sys.open(path, flags, 0o666, (err, fd) => {
          if (err === null) resume(Effect.succeed(fd))
          else if (!writable && err.code === "ENOENT") resume(Effect.succeed(undefined))
          else if (err.code === "ELOOP") resume(Effect.fail(unsafe(path, "a symlink is in the way of the file")))
          else resume(Effect.fail(fromErrno("open", path, err)))
        })
      )
      if (fd === undefined) return undefined
      const checked = Effect.gen(function*() {
        const st = yield* Effect.try({ try: () => sys.fstatSync(fd), catch: (e) => fromErrno("open", path, e) })
        if (st.kind !== "file") {
          return yield* conflict(path, "not a regular file")
        }
        if (writable && st.size > lengthOf(f)) {
          yield* Effect.async<void, Storage.StorageError>((resume) =>
            sys.ftruncate(fd, lengthOf(f), (e) => resume(e === null ? Effect.void : Effect.fail(fromErrno("write", path, e))))
          )
        }
        return fd
      })
      return yield* Effect.tapError(checked, () => Effect.sync(() => sys.closeSync(fd)))
    })

    const openHandle = (f: number, writable: boolean) =>
      openLock.withPermits(1)(Effect.gen(function*() {
        if (closed) return yield* closedError(paths[f]!)
        const cur = cache.get(f)
        if (cur !== undefined && (cur.writable || !writable)) {
          cur.refs++ // opened by another fiber meanwhile
          return cur
        }
        if (cur !== undefined) evict(cur) // read-only handle, now writing
        const fd = yield* openFd(f, writable)
        if (fd === undefined) return undefined
        // Referenced before the lock is released, so no other opener can evict and close it first.
        const h: Handle = { file: f, fd, writable, refs: 1, evicted: false, dirty: false, writing: false, waiting: [] }
        openCount++
        cache.set(f, h)
        for (const old of cache.values()) {
          if (cache.size <= maxOpen) break
          evict(old)
        }
        return h
      }))

    const acquire = (f: number, writable: boolean): Effect.Effect<Handle | undefined, Storage.StorageError> =>
      Effect.suspend(() => {
        const h = cache.get(f)
        if (h !== undefined && (h.writable || !writable)) {
          cache.delete(f) // refresh LRU position
          cache.set(f, h)
          h.refs++
          return Effect.succeed(h)
        }
        return openHandle(f, writable)
      })

    const release = (h: Handle | undefined) =>
      Effect.sync(() => {
        if (h === undefined) return
        h.refs--
        if (h.evicted && h.refs === 0) closeFd(h)
      })

    const write = (f: number, offset: number, data: Uint8Array) =>
      Effect.uninterruptible(Effect.acquireUseRelease(
        acquire(f, true),
        (h) => {
          h!.dirty = true
          return Effect.mapError(pwriteSerial(sys, h!, data, offset), (e) => fromErrno("write", paths[f]!, e))
        },
        release
      ))

    const read = (f: number, offset: number, into: Uint8Array) =>
      Effect.uninterruptible(Effect.acquireUseRelease(
        acquire(f, false),
        (h) =>
          h === undefined
            ? Effect.succeed(0)
            : Effect.mapError(preadAll(sys, h.fd, into, offset), (e) => fromErrno("read", paths[f]!, e)),
        release
      ))

    const size = (f: number) =>
      Effect.gen(function*() {
        const path = paths[f]!
        if (closed) return yield* closedError(path)
        if (!(yield* ensureDir(Path.dirname(path), false))) return -1
        const st = yield* Effect.mapError(lstatOrUndefined(sys, path), (e) => fromErrno("read", path, e))
        if (st === undefined) return -1
        if (st.kind === "symlink") return yield* unsafe(path, "a symlink is in the way of the file")
        if (st.kind !== "file") return yield* conflict(path, "not a regular file")
        return st.size
      })

    /** inode, size, mtime and ctime (ns) of the open descriptor when there is one (what reads use), else of the path. */
    const version = (f: number): Effect.Effect<string | undefined> =>
      Effect.suspend(() => {
        if (closed) return Effect.succeed(undefined)
        const h = cache.get(f)
        if (h !== undefined) {
          try {
            return Effect.succeed(sys.fstatSync(h.fd).version)
          } catch {
            return Effect.succeed(undefined)
          }
        }
        return Effect.async<string | undefined>((resume) =>
          sys.lstat(paths[f]!, (err, st) => resume(Effect.succeed(err === null ? st.version : undefined)))
        )
      })

    const touch = (f: number) =>
      Effect.flatMap(openFd(f, true), (fd) =>
        Effect.sync(() => {
          if (fd !== undefined) sys.closeSync(fd)
        }))

    const flush = Effect.suspend(() =>
      Effect.forEach(
        [...cache.values()].filter((h) => h.dirty),
        (h) =>
          Effect.uninterruptible(Effect.acquireUseRelease(
            Effect.sync(() => {
              h.refs++
              h.dirty = false
            }),
            () =>
              Effect.async<void, Storage.StorageError>((resume) =>
                sys.fdatasync(h.fd, (err) =>
                  resume(err === null ? Effect.void : Effect.fail(fromErrno("write", paths[h.file]!, err)))
                )
              ),
            () => release(h)
          )),
        { discard: true }
      )
    )

    yield* Effect.addFinalizer(() =>
      Effect.sync(() => {
        closed = true
        for (const h of [...cache.values()]) evict(h)
      })
    )

    const backend: Storage.Backend = { write, read, size, touch, flush, version }
    const storage = yield* Storage.make(backend, layout, options)
    return { ...storage, root, pathOf: (f: number) => paths[f]!, openFiles: () => openCount }
  })

/** The file storage as a scoped layer. */
export const layer = (options: Options): Layer.Layer<Storage.Storage, Storage.StorageError, Hasher> =>
  Layer.scoped(Storage.Storage, make(options))
