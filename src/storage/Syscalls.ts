/**
 * The file-system calls `FileStorage` makes, as a port: Node's `fs` in production ({@link node}), a model kernel in
 * the concurrency tests (test/storage/modelKernel.ts), a fault injector in the failure tests. Callback style, as
 * `node:fs` itself: the write and read path adds no Promise or fiber per call (THROUGHPUT.md rule 10).
 *
 * Callbacks receive Node's errors (`code` = "EBADF", "ENOSPC", …). Synchronous calls throw them.
 */
import * as Fs from "node:fs"

/** What storage needs to know of a file-system object. */
export interface Stat {
  readonly kind: "file" | "directory" | "symlink" | "other"
  readonly size: number
  /** Device and inode: which file this is. */
  readonly identity: string
  /** Links to it: 0 once a file held open has been deleted. */
  readonly links: number
  /** Modification time (ns): moves with every write and truncation (not with chmod or link, unlike ctime). */
  readonly modified: string
  /** Identity, size, mtime and ctime: changes whenever the content may have changed. */
  readonly version: string
}

export type Errno = NodeJS.ErrnoException

export interface Syscalls {
  /** open(2); `flags` from `fs.constants`. */
  readonly open: (path: string, flags: number, mode: number, cb: (err: Errno | null, fd: number) => void) => void
  /** close(2), synchronous (cheap for regular files; the descriptor is gone when it returns or throws). */
  readonly closeSync: (fd: number) => void
  readonly write: (
    fd: number,
    buffer: Uint8Array,
    offset: number,
    length: number,
    position: number,
    cb: (err: Errno | null, written: number) => void
  ) => void
  readonly read: (
    fd: number,
    buffer: Uint8Array,
    offset: number,
    length: number,
    position: number,
    cb: (err: Errno | null, read: number) => void
  ) => void
  /** pwrite(2) on the calling thread (FileStorage's inline I/O, internal/InlineIo.ts); returns the bytes written. */
  readonly writeSync: (fd: number, buffer: Uint8Array, offset: number, length: number, position: number) => number
  readonly fdatasync: (fd: number, cb: (err: Errno | null) => void) => void
  readonly ftruncate: (fd: number, length: number, cb: (err: Errno | null) => void) => void
  /** fstat(2), synchronous (atomic with the caller's own bookkeeping of `fd`). */
  readonly fstatSync: (fd: number) => Stat
  /** lstat(2): a symlink is reported as one. */
  readonly lstat: (path: string, cb: (err: Errno | null, stat: Stat) => void) => void
  /** stat(2): follows symlinks. */
  readonly stat: (path: string, cb: (err: Errno | null, stat: Stat) => void) => void
  /** mkdir(2) of one directory (never recursive: Node's recursive mkdir spins forever where mkdir says ENOENT). */
  readonly mkdir: (path: string, cb: (err: Errno | null) => void) => void
}

const kindOf = (st: Fs.BigIntStats): Stat["kind"] =>
  st.isFile() ? "file" : st.isDirectory() ? "directory" : st.isSymbolicLink() ? "symlink" : "other"

const statOf = (st: Fs.BigIntStats): Stat => ({
  kind: kindOf(st),
  size: Number(st.size),
  identity: `${st.dev}:${st.ino}`,
  links: Number(st.nlink),
  modified: String(st.mtimeNs),
  version: `${st.dev}:${st.ino}:${st.size}:${st.mtimeNs}:${st.ctimeNs}`
})

const noStat: Stat = { kind: "other", size: 0, identity: "", links: 0, modified: "", version: "" }

/** `node:fs`. */
export const node: Syscalls = {
  open: (path, flags, mode, cb) => Fs.open(path, flags, mode, cb),
  closeSync: (fd) => Fs.closeSync(fd),
  write: (fd, buffer, offset, length, position, cb) => Fs.write(fd, buffer, offset, length, position, cb),
  read: (fd, buffer, offset, length, position, cb) => Fs.read(fd, buffer, offset, length, position, cb),
  writeSync: (fd, buffer, offset, length, position) => Fs.writeSync(fd, buffer, offset, length, position),
  fdatasync: (fd, cb) => Fs.fdatasync(fd, cb),
  ftruncate: (fd, length, cb) => Fs.ftruncate(fd, length, cb),
  fstatSync: (fd) => statOf(Fs.fstatSync(fd, { bigint: true })),
  lstat: (path, cb) => Fs.lstat(path, { bigint: true }, (err, st) => cb(err, err === null ? statOf(st) : noStat)),
  stat: (path, cb) => Fs.stat(path, { bigint: true }, (err, st) => cb(err, err === null ? statOf(st) : noStat)),
  mkdir: (path, cb) => Fs.mkdir(path, (err) => cb(err))
}
