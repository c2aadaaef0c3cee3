/**
 * FileStorage's descriptor cache: at most `capacity` descriptors, at most one cached per file, reused in LRU order.
 * Plain callbacks, no Effect: it sits under every positional read and write.
 *
 * Why it is correct, in three sentences:
 * 1. A descriptor belongs to exactly one {@link Handle}, created when its open succeeds, and is closed exactly once,
 *    by this module, at the first moment the handle is both out of the table and unpinned — so never while an
 *    operation holds it, and a closed handle is never reachable from the table.
 * 2. An operation pins its handle in the same synchronous step that finds it in the table (or is handed it already
 *    pinned by the open it waited for) and unpins it when its system call has called back; nothing else pins.
 * 3. Descriptors open plus opens in flight never exceed `capacity` (an open takes a free slot or closes an idle
 *    handle, else waits in line), and once `close` has begun no pin is granted and an open that completes closes
 *    its descriptor at once.
 */
import type { StorageError } from "../Storage.ts"

export interface Handle {
  readonly file: number
  readonly fd: number
  readonly writable: boolean
  /** Operations holding the descriptor. */
  pins: number
  /** In the table (reachable for new pins). */
  cached: boolean
  closed: boolean
}

/** A pending `acquire`. */
export interface Request {
  readonly file: number
  readonly writable: boolean
  readonly cb: (err: StorageError | null, handle: Handle | undefined) => void
  /** Answered (granted, failed) or cancelled: never answered again. */
  done: boolean
  /** The handle granted, pinned for the requester. */
  handle: Handle | undefined
}

interface Opening {
  readonly file: number
  readonly writable: boolean
  readonly waiters: Array<Request>
  retried: boolean
}

export interface Options {
  readonly capacity: number
  /** Opens file `file`; `fd` undefined when it does not exist and `writable` is false. */
  readonly open: (file: number, writable: boolean, cb: (err: StorageError | null, fd: number | undefined) => void) => void
  /** Closes a descriptor (called exactly once per descriptor); reports its own errors. */
  readonly close: (fd: number, file: number) => void
  readonly closedError: (file: number) => StorageError
  /** EMFILE / ENFILE: the cache sheds its idle descriptors and retries once. */
  readonly isTooMany: (e: StorageError) => boolean
  /** A broken invariant (a bug): reported, never thrown from a callback. */
  readonly bug: (detail: string) => void
}

export interface DescriptorCache {
  /** Pins a handle for `file` and calls `cb` with it — synchronously when one is cached. */
  readonly acquire: (file: number, writable: boolean, cb: Request["cb"]) => Request
  /** Interruption: a request not answered yet is withdrawn; a granted one gives its pin back. */
  readonly cancel: (r: Request) => void
  /** Gives back the pin of one operation. */
  readonly release: (h: Handle) => void
  /** Pins the cached handle of `file` (any mode) when there is one. */
  readonly pinCached: (file: number) => Handle | undefined
  /** The cached handle of `file`, for a synchronous call only (not pinned). */
  readonly peek: (file: number) => Handle | undefined
  /** Stops granting; closes idle descriptors now, the others as their operations end; `done` once all are closed. */
  readonly close: (done: () => void) => void
  /** Descriptors open now. */
  readonly openCount: () => number
  /** The process ran out of descriptors at least once (EMFILE/ENFILE): the capacity was lowered. */
  readonly underPressure: () => boolean
  /** Closes every idle descriptor (others may need them: e.g. under pressure, before a state file is written). */
  readonly shedIdle: () => void
}

export const make = (options: Options): DescriptorCache => {
  const table = new Map<number, Handle>() // insertion order = LRU order, oldest first
  const opening = new Map<number, Opening>()
  const queue: Array<Request> = [] // waiting for a slot, in arrival order
  let capacity = Math.max(1, Math.floor(options.capacity))
  let used = 0 // descriptors open + opens in flight
  let open = 0
  let closing = false
  let pressure = false
  const drained: Array<() => void> = []

  const closeHandle = (h: Handle) => {
    if (h.closed || h.cached || h.pins !== 0) return options.bug(`close of descriptor ${h.fd} in the wrong state`)
    h.closed = true
    used--
    open--
    options.close(h.fd, h.file)
    if (closing && used === 0) drained.splice(0).forEach((f) => f())
  }
  const retire = (h: Handle) => {
    if (!h.cached) return
    h.cached = false
    table.delete(h.file)
    if (h.pins === 0) closeHandle(h)
  }
  const grant = (r: Request, h: Handle | undefined) => {
    r.done = true
    r.handle = h
    r.cb(null, h)
  }
  const fail = (r: Request, e: StorageError) => {
    if (r.done) return
    r.done = true
    r.cb(e, undefined)
  }
  const pin = (h: Handle) => {
    h.pins++
    table.delete(h.file) // refresh its LRU position
    table.set(h.file, h)
  }
  const idle = (): Handle | undefined => {
    for (const h of table.values()) if (h.pins === 0) return h
    return undefined
  }

  /** Serves `r` now, or returns false when it needs a slot and none can be had. */
  const attempt = (r: Request): boolean => {
    const h = table.get(r.file)
    if (h !== undefined && (h.writable || !r.writable)) {
      pin(h)
      grant(r, h)
      return true
    }
    const o = opening.get(r.file)
    if (o !== undefined) {
      o.waiters.push(r) // retried when the open ends if its mode does not fit
      return true
    }
    // A read-only handle where a writer needs one: it makes room for the writable one (and closes when its
    // readers are done), so the file never has two handles in the table.
    if (h !== undefined) retire(h)
    if (used >= capacity) {
      const victim = idle()
      if (victim === undefined) return false
      retire(victim)
    }
    startOpen({ file: r.file, writable: r.writable, waiters: [r], retried: false })
    return true
  }

  const pump = () => {
    while (!closing && queue.length > 0) {
      const r = queue[0]!
      if (r.done) {
        queue.shift()
        continue
      }
      if (!attempt(r)) return
      queue.shift()
    }
  }

  const startOpen = (o: Opening) => {
    used++
    opening.set(o.file, o)
    options.open(o.file, o.writable, (err, fd) => {
      opening.delete(o.file)
      if (err === null && fd !== undefined) {
        if (closing) {
          // Nobody may use it any more: closed at once, still exactly once.
          const h: Handle = { file: o.file, fd, writable: o.writable, pins: 0, cached: false, closed: false }
          open++
          closeHandle(h)
          return
        }
        const h: Handle = { file: o.file, fd, writable: o.writable, pins: 0, cached: true, closed: false }
        open++
        table.set(o.file, h)
        const misfits: Array<Request> = []
        for (const w of o.waiters) {
          if (w.done) continue
          if (h.writable || !w.writable) {
            h.pins++
            grant(w, h)
          } else misfits.push(w)
        }
        for (const w of misfits) if (!attempt(w)) queue.push(w)
        return pump()
      }
      used--
      if (closing) {
        if (used === 0) drained.splice(0).forEach((f) => f())
        return
      }
      if (err !== null && options.isTooMany(err) && !o.retried) {
        // Out of descriptors (sockets need them too): close the idle ones, never cache more than are left in use
        // plus this one, and retry once; a second failure is reported.
        pressure = true
        for (const h of [...table.values()]) if (h.pins === 0) retire(h)
        capacity = Math.max(1, Math.min(capacity, used + 1))
        o.retried = true
        return startOpen(o)
      }
      const writers: Array<Request> = []
      for (const w of o.waiters) {
        if (err !== null) fail(w, err)
        else if (!w.done) {
          if (w.writable) writers.push(w) // joined a read-only open of a missing file: now it opens (creates) it
          else grant(w, undefined) // a file that does not exist: reads see nothing
        }
      }
      for (const w of writers) if (!attempt(w)) queue.push(w)
      pump()
    })
  }

  return {
    acquire: (file, writable, cb) => {
      const r: Request = { file, writable, cb, done: false, handle: undefined }
      if (closing) {
        fail(r, options.closedError(file))
        return r
      }
      // A request that needs a slot goes behind those already waiting for one.
      const h = table.get(file)
      const fits = h !== undefined && (h.writable || !writable)
      if (!fits && queue.length > 0 && !opening.has(file)) queue.push(r)
      else if (!attempt(r)) queue.push(r)
      return r
    },
    cancel: (r) => {
      if (!r.done) {
        r.done = true // skipped wherever it waits (queue or opening)
        return
      }
      if (r.handle !== undefined) {
        const h = r.handle
        r.handle = undefined
        release(h)
      }
    },
    release: (h) => release(h),
    pinCached: (file) => {
      if (closing) return undefined
      const h = table.get(file)
      if (h !== undefined) pin(h)
      return h
    },
    peek: (file) => table.get(file),
    close: (done) => {
      closing = true
      for (const h of [...table.values()]) retire(h)
      for (const r of queue.splice(0)) fail(r, options.closedError(r.file))
      for (const o of opening.values()) for (const w of o.waiters) fail(w, options.closedError(w.file))
      if (used === 0) done()
      else drained.push(done)
    },
    openCount: () => open,
    underPressure: () => pressure,
    shedIdle: () => {
      for (const h of [...table.values()]) if (h.pins === 0) retire(h)
      pump()
    }
  }

  function release(h: Handle): void {
    if (h.closed || h.pins <= 0) return options.bug(`release of descriptor ${h.fd} that is not pinned`)
    h.pins--
    if (h.pins > 0) return
    if (!h.cached) closeHandle(h)
    if (queue.length > 0) pump()
  }
}
