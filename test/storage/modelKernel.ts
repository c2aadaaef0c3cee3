/**
 * A model kernel behind the `Syscalls` port, and a deterministic driver that decides the order in which pending
 * calls complete — so a test can explore the interleavings of FileStorage's fibers with its I/O.
 *
 * What the model keeps as a real kernel does:
 * - descriptors are small integers and `open` returns the LOWEST free number, so a descriptor closed too early is
 *   soon another file's: a stale write then lands in the wrong file (the bug of issue 13);
 * - an asynchronous call takes effect some time after it was issued (libuv runs it on its thread pool), on whatever
 *   the descriptor number means *then*, and its callback is delivered some time after that: the driver schedules
 *   both steps;
 * - the page cache and the disk: `data` is what reads see, `durable` what an `fdatasync` (on any descriptor of the
 *   inode) has made safe.
 * It records as violations what a correct client never does: any EBADF (a call on a number that is not open), a
 * close of a number while a call issued on it is still pending, a write through a read-only descriptor.
 */
import * as Effect from "effect/Effect"
import type * as Exit from "effect/Exit"
import type * as Scheduler from "effect/Scheduler"
import * as Fs from "node:fs"
import * as Path from "node:path"
import type * as Syscalls from "../../src/storage/Syscalls.ts"

interface Inode {
  readonly ino: number
  data: Uint8Array
  size: number
  durable: Uint8Array
  durableSize: number
  changes: number
}

interface OpenFile {
  readonly inode: Inode
  readonly path: string
  readonly writable: boolean
}

interface Pending {
  readonly label: string
  /** The descriptor the call was issued on, if any. */
  readonly fd: number | undefined
  readonly run: () => void
}

/** A failure to inject: when `when(call, target)` is true the call fails with `code` instead of running. */
export interface Fault {
  readonly when: (call: string, target: string) => boolean
  readonly code: string
}

const errno = (code: string, call: string, target: string): Syscalls.Errno =>
  Object.assign(new Error(`${code}: ${call} ${target}`), { code, syscall: call })

const grow = (a: Uint8Array, n: number): Uint8Array => {
  if (a.length >= n) return a
  const b = new Uint8Array(Math.max(n, a.length * 2))
  b.set(a)
  return b
}

export interface Kernel {
  readonly syscalls: Syscalls.Syscalls
  readonly pending: Array<Pending>
  /** Completes pending call `i` (its effect, then its callback). */
  readonly step: (i: number) => void
  readonly violations: Array<string>
  /** Descriptors open now. */
  readonly openCount: () => number
  readonly peakOpen: () => number
  /** The page-cache bytes of `path` (undefined: no such file). */
  readonly contents: (path: string) => Uint8Array | undefined
  /** The bytes of `path` an fdatasync made durable. */
  readonly durable: (path: string) => Uint8Array | undefined
  readonly isDir: (path: string) => boolean
  /** Makes a directory (and its parents) exist, as a test's setup. */
  readonly mkdirp: (path: string) => void
  /** Another process deletes `path` (descriptors open on it keep the inode). */
  readonly unlink: (path: string) => void
  /** Another process truncates `path`. */
  readonly truncate: (path: string, length: number) => void
  readonly faults: Array<Fault>
  /** Writes of more than one byte write only their first half (rounded up) and say so, as a kernel may. */
  shortWrites: boolean
  /** Writes made inline (`writeSync`): they take effect at once, not when the driver says. */
  inlineCalls: number
  /** Called as each inline call begins (e.g. to move a test's clock). */
  onInline: ((label: string) => void) | undefined
}

export const makeKernel = (): Kernel => {
  const dirs = new Set<string>(["/"])
  const files = new Map<string, Inode>()
  const fds = new Map<number, OpenFile>()
  const pending: Array<Pending> = []
  const violations: Array<string> = []
  const faults: Array<Fault> = []
  let nextIno = 1
  let peak = 0

  const faultOf = (call: string, target: string) => faults.find((f) => f.when(call, target))?.code
  /**
   * A call in two steps the driver schedules separately: it takes effect (`act`, on whatever its descriptor means
   * then), and later its callback is delivered (what `act` returns) — as libuv's thread pool runs a call and the
   * event loop calls back some time after.
   */
  const later = (label: string, fd: number | undefined, act: () => () => void) =>
    pending.push({
      label,
      fd,
      run: () => {
        const deliver = act()
        pending.push({ label: `${label} (callback)`, fd: undefined, run: deliver })
      }
    })
  const lookupFd = (call: string, fd: number): OpenFile | Syscalls.Errno => {
    const f = fds.get(fd)
    if (f !== undefined) return f
    violations.push(`${call} on descriptor ${fd}, which is not open (EBADF)`)
    return errno("EBADF", call, String(fd))
  }
  const statOf = (kind: Syscalls.Stat["kind"], inode?: Inode): Syscalls.Stat => ({
    kind,
    size: inode?.size ?? 0,
    identity: String(inode?.ino ?? 0),
    links: inode === undefined ? 1 : [...files.values()].includes(inode) ? 1 : 0,
    modified: String(inode?.changes ?? 0),
    version: inode === undefined ? kind : `${inode.ino}:${inode.size}:${inode.changes}`
  })
  const noStat = statOf("other")
  const statPath = (path: string): Syscalls.Stat | undefined => {
    if (dirs.has(path)) return statOf("directory")
    const inode = files.get(path)
    return inode === undefined ? undefined : statOf("file", inode)
  }

  /** A write taking effect now: the bytes written (a short write takes the first part), or the error. */
  const writeNow = (fd: number, buffer: Uint8Array, offset: number, length: number, position: number): number | Syscalls.Errno => {
    const f = lookupFd("write", fd)
    if (f instanceof Error) return f
    const fault = faultOf("write", f.path)
    if (fault !== undefined) return errno(fault, "write", f.path)
    if (!f.writable) {
      violations.push(`write through read-only descriptor ${fd} (${f.path})`)
      return errno("EBADF", "write", f.path)
    }
    const n = kernel.shortWrites && length > 1 ? Math.ceil(length / 2) : length
    const inode = f.inode
    inode.data = grow(inode.data, position + n)
    inode.data.set(buffer.subarray(offset, offset + n), position)
    inode.size = Math.max(inode.size, position + n)
    inode.changes++
    return n
  }
  const readNow = (fd: number, buffer: Uint8Array, offset: number, length: number, position: number): number | Syscalls.Errno => {
    const f = lookupFd("read", fd)
    if (f instanceof Error) return f
    const fault = faultOf("read", f.path)
    if (fault !== undefined) return errno(fault, "read", f.path)
    const n = Math.max(0, Math.min(length, f.inode.size - position))
    buffer.set(f.inode.data.subarray(position, position + n), offset)
    return n
  }

  const syscalls: Syscalls.Syscalls = {
    open: (path, flags, _mode, cb) =>
      later(`open ${path}`, undefined, () => {
        const fault = faultOf("open", path)
        if (fault !== undefined) return () => cb(errno(fault, "open", path), -1)
        if (!dirs.has(Path.dirname(path))) return () => cb(errno("ENOENT", "open", path), -1)
        if (dirs.has(path)) return () => cb(errno("EISDIR", "open", path), -1)
        let inode = files.get(path)
        if (inode === undefined) {
          if ((flags & Fs.constants.O_CREAT) === 0) return () => cb(errno("ENOENT", "open", path), -1)
          inode = { ino: nextIno++, data: new Uint8Array(0), size: 0, durable: new Uint8Array(0), durableSize: 0, changes: 0 }
          files.set(path, inode)
        }
        let fd = 3
        while (fds.has(fd)) fd++
        fds.set(fd, { inode, path, writable: (flags & Fs.constants.O_RDWR) !== 0 })
        peak = Math.max(peak, fds.size)
        return () => cb(null, fd)
      }),
    closeSync: (fd) => {
      const f = lookupFd("close", fd)
      if (f instanceof Error) throw f
      const inFlight = pending.filter((p) => p.fd === fd)
      if (inFlight.length > 0) {
        violations.push(`close of descriptor ${fd} (${f.path}) while ${inFlight.map((p) => p.label).join(", ")} pending`)
      }
      fds.delete(fd)
    },
    write: (fd, buffer, offset, length, position, cb) => {
      later(`write fd ${fd} @${position}+${length}`, fd, () => {
        // The caller's buffer as it is when the call runs (not as issued): a caller that reused it too early
        // writes what it put there since.
        const r = writeNow(fd, buffer, offset, length, position)
        return () => (typeof r === "number" ? cb(null, r) : cb(r, 0))
      })
    },
    read: (fd, buffer, offset, length, position, cb) =>
      later(`read fd ${fd} @${position}+${length}`, fd, () => {
        const r = readNow(fd, buffer, offset, length, position)
        return () => (typeof r === "number" ? cb(null, r) : cb(r, 0))
      }),
    writeSync: (fd, buffer, offset, length, position) => {
      kernel.inlineCalls++
      kernel.onInline?.(`write fd ${fd} @${position}+${length}`)
      const r = writeNow(fd, buffer, offset, length, position)
      if (typeof r !== "number") throw r
      return r
    },

    fdatasync: (fd, cb) =>
      later(`fdatasync fd ${fd}`, fd, () => {
        const f = lookupFd("fdatasync", fd)
        if (f instanceof Error) return () => cb(f)
        const fault = faultOf("fdatasync", f.path)
        if (fault !== undefined) return () => cb(errno(fault, "fdatasync", f.path))
        f.inode.durable = f.inode.data.slice(0, f.inode.size)
        f.inode.durableSize = f.inode.size
        return () => cb(null)
      }),
    ftruncate: (fd, length, cb) =>
      later(`ftruncate fd ${fd}`, fd, () => {
        const f = lookupFd("ftruncate", fd)
        if (f instanceof Error) return () => cb(f)
        if (!f.writable) {
          violations.push(`ftruncate through read-only descriptor ${fd}`)
          return () => cb(errno("EINVAL", "ftruncate", f.path))
        }
        const inode = f.inode
        inode.data = grow(inode.data, length)
        inode.data.fill(0, length)
        inode.size = length
        inode.changes++
        return () => cb(null)
      }),
    fstatSync: (fd) => {
      const f = lookupFd("fstat", fd)
      if (f instanceof Error) throw f
      return statOf("file", f.inode)
    },
    lstat: (path, cb) =>
      later(`lstat ${path}`, undefined, () => {
        const st = statPath(path)
        return () => cb(st === undefined ? errno("ENOENT", "lstat", path) : null, st ?? noStat)
      }),
    stat: (path, cb) =>
      later(`stat ${path}`, undefined, () => {
        const st = statPath(path)
        return () => cb(st === undefined ? errno("ENOENT", "stat", path) : null, st ?? noStat)
      }),
    mkdir: (path, cb) =>
      later(`mkdir ${path}`, undefined, () => {
        const fault = faultOf("mkdir", path)
        if (fault !== undefined) return () => cb(errno(fault, "mkdir", path))
        if (dirs.has(path) || files.has(path)) return () => cb(errno("EEXIST", "mkdir", path))
        if (!dirs.has(Path.dirname(path))) return () => cb(errno("ENOENT", "mkdir", path))
        dirs.add(path)
        return () => cb(null)
      })
  }

  const kernel: Kernel = {
    syscalls,
    pending,
    step: (i) => {
      const [p] = pending.splice(i, 1)
      p!.run()
    },
    violations,
    openCount: () => fds.size,
    peakOpen: () => peak,
    contents: (path) => {
      const inode = files.get(path)
      return inode === undefined ? undefined : inode.data.slice(0, inode.size)
    },
    durable: (path) => {
      const inode = files.get(path)
      return inode === undefined ? undefined : inode.durable.slice(0, inode.durableSize)
    },
    isDir: (path) => dirs.has(path),
    mkdirp: (path) => {
      for (let d = path; !dirs.has(d); d = Path.dirname(d)) dirs.add(d)
    },
    unlink: (path) => {
      files.delete(path)
    },
    truncate: (path, length) => {
      const inode = files.get(path)
      if (inode === undefined) return
      inode.data = grow(inode.data, length)
      inode.data.fill(0, length)
      inode.size = length
      inode.changes++
    },
    faults,
    shortWrites: false,
    inlineCalls: 0,
    onInline: undefined
  }
  return kernel
}

export class Deadlock extends Error {}

/**
 * Runs `program` with every fiber on a scheduler of our own, and completes the kernel's pending calls one at a
 * time in the order `choose` picks, each only once every fiber is blocked (so the choice is the only source of
 * nondeterminism). After the program ends, the remaining calls are completed too. Throws {@link Deadlock} when
 * the program waits and no call is pending. `onStep(n)` runs after the n-th completed call.
 */
export const drive = async <A, E>(
  program: Effect.Effect<A, E>,
  kernel: Kernel,
  choose: (count: number) => number,
  onStep: (n: number) => void = () => {},
  maxSteps = 100_000
): Promise<Exit.Exit<A, E>> => {
  const tasks: Array<Scheduler.Task> = []
  const scheduler: Scheduler.Scheduler = {
    scheduleTask: (task) => {
      tasks.push(task)
    },
    shouldYield: () => false
  }
  let exit: Exit.Exit<A, E> | undefined
  void Effect.runPromiseExit(Effect.withScheduler(program, scheduler)).then((e) => {
    exit = e
  })
  const settle = async () => {
    for (;;) {
      await new Promise<void>((resolve) => setImmediate(resolve)) // every microtask (promise callbacks) first
      if (tasks.length === 0) return
      while (tasks.length > 0) tasks.shift()!()
    }
  }
  let steps = 0
  for (;;) {
    await settle()
    if (kernel.pending.length === 0) {
      if (exit !== undefined) return exit
      throw new Deadlock(`blocked after ${steps} calls with no call pending`)
    }
    if (++steps > maxSteps) throw new Error(`more than ${maxSteps} calls`)
    kernel.step(exit !== undefined ? 0 : choose(kernel.pending.length) % kernel.pending.length)
    onStep(steps)
  }
}
