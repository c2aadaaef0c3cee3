/**
 * The in-memory layer of the `Storage` port, for tests. A file's buffer (its full length) is allocated on its
 * first write, so memory is bounded by the torrent's wanted size. Like a sparse file, a file's size is the end of
 * its furthest write, and bytes never written read as zeros.
 */
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import type { Hasher } from "./Hasher.ts"
import * as Storage from "./Storage.ts"

export interface MemoryStorage extends Storage.StorageShape {
  /** The stored bytes of file `file` up to its current size; undefined when it was never created. */
  readonly contents: (file: number) => Uint8Array | undefined
}

export const make = (options: Storage.MakeOptions): Effect.Effect<MemoryStorage, Storage.StorageError, Hasher> =>
  Effect.gen(function*() {
    const layout = yield* Storage.layoutOf(options.files, options.pieceLength)
    const data: Array<Uint8Array | undefined> = []
    const sizes: Array<number> = []
    const lengthOf = (f: number) => layout.starts[f + 1]! - layout.starts[f]!
    const fileOf = (f: number) => {
      let buf = data[f]
      if (buf === undefined) {
        buf = new Uint8Array(lengthOf(f))
        data[f] = buf
        sizes[f] = 0
      }
      return buf
    }
    const backend: Storage.Backend = {
      write: (f, offset, bytes) =>
        Effect.sync(() => {
          fileOf(f).set(bytes, offset)
          sizes[f] = Math.max(sizes[f]!, offset + bytes.length)
        }),
      read: (f, offset, into) =>
        Effect.sync(() => {
          const buf = data[f]
          const n = buf === undefined ? 0 : Math.max(0, Math.min(into.length, sizes[f]! - offset))
          if (n > 0) into.set(buf!.subarray(offset, offset + n))
          return n
        }),
      size: (f) => Effect.sync(() => (data[f] === undefined ? -1 : sizes[f]!)),
      touch: (f) => Effect.sync(() => void fileOf(f)),
      flush: Effect.void
    }
    const storage = yield* Storage.make(backend, layout, options)
    return { ...storage, contents: (f: number) => data[f]?.subarray(0, sizes[f]!) }
  })

export const layer = (options: Storage.MakeOptions): Layer.Layer<Storage.Storage, Storage.StorageError, Hasher> =>
  Layer.effect(Storage.Storage, make(options))
