/**
 * v2-only and hybrid test torrents (BEP 52) over random content, in the shape of `seeder.ts`'s {@link Built}: made
 * from scratch ({@link buildV2}: the files' Merkle roots and piece layers from core/Merkle, the torrent from
 * `metainfo/Create.ts`, the layout libtorrent 2.0.8 writes) or from a real torrent ({@link regenerate}: its names
 * and layout kept, its hashes recomputed), decoded back as every reader does.
 */
import { expect } from "@effect/vitest"
import { createHash, randomBytes } from "node:crypto"
import * as Fs from "node:fs"
import * as Net from "node:net"
import * as Path from "node:path"
import * as Effect from "effect/Effect"
import * as Either from "effect/Either"
import * as Bencode from "../../src/bencode/Bencode.ts"
import * as Bytes from "../../src/core/Bytes.ts"
import * as Merkle from "../../src/core/Merkle.ts"
import * as Create from "../../src/metainfo/Create.ts"
import * as Metainfo from "../../src/metainfo/Metainfo.ts"
import * as FrameDecoder from "../../src/wire/FrameDecoder.ts"
import * as Handshake from "../../src/wire/Handshake.ts"
import * as Message from "../../src/wire/Message.ts"
import type { Built } from "./seeder.ts"

export const buildV2 = (options: {
  readonly name: string
  readonly format: "v2" | "hybrid"
  readonly pieceLength: number
  /** Multi-file: paths below the torrent's directory. One file with `single` makes a single-file torrent. */
  readonly files: ReadonlyArray<{ readonly path: ReadonlyArray<string>; readonly length: number }>
  readonly single?: boolean
  readonly trackers?: ReadonlyArray<ReadonlyArray<string>>
}): Built => {
  const single = options.single === true
  const sorted = Create.sortFilesTree(options.files.map((f) => ({ path: single ? [] : f.path, length: f.length })))
  const contents = new Map<Create.InputFile, Uint8Array>(sorted.map((f) => [f, new Uint8Array(randomBytes(f.length))]))
  const hashed = sorted.map((f) => {
    const leaves = Merkle.leafHashes(contents.get(f)!)
    return {
      path: f.path,
      length: f.length,
      ...(f.length > 0 ? { piecesRoot: Merkle.fileRoot(leaves) } : {}),
      ...(f.length > options.pieceLength ? { pieceLayer: Merkle.pieceLayer(leaves, options.pieceLength) } : {})
    }
  })
  const layout = Create.alignedLayout(sorted, options.pieceLength)
  const v1Payload = Bytes.concat(
    layout.slots.map((s) => s._tag === "Pad" ? new Uint8Array(s.length) : contents.get(sorted[s.index]!)!)
  )
  const pieces: Array<Uint8Array> = []
  if (options.format === "hybrid") {
    for (let at = 0; at < v1Payload.length; at += options.pieceLength) {
      pieces.push(Bytes.sha1(v1Payload.subarray(at, at + options.pieceLength)))
    }
  }
  const built = Create.build({
    name: options.name,
    single,
    format: options.format,
    pieceLength: options.pieceLength,
    files: hashed,
    pieces: Bytes.concat(pieces),
    trackers: options.trackers
  })
  if (Either.isLeft(built)) throw new Error(built.left.message)
  const m = built.right.metainfo
  // Each metainfo file's bytes, by path (a v2-only torrent has a tail pad the v1 layout does not: zeros all the same)
  const byPath = new Map(sorted.map((f) => [[m.name, ...f.path].join("/"), contents.get(f)!]))
  const files = m.files.map((f) => {
    if (f.pad) return new Uint8Array(f.length)
    const data = single ? contents.get(sorted[0]!)! : byPath.get(f.path.join("/"))
    if (data === undefined) throw new Error(`no content for ${f.path.join("/")}`)
    return data
  })
  const payload = Bytes.concat(files)
  const check = Metainfo.decode(built.right.torrent, { v2Only: true })
  if (Either.isLeft(check)) throw new Error(check.left.message)
  return { metainfo: m, bytes: built.right.torrent, payload, files }
}

/**
 * A real v2-only or hybrid torrent (a fixture) over a random payload, its names and layout untouched: every
 * `pieces root` and `piece layers` entry recomputed, and a hybrid's v1 `pieces` over the payload (pads as zeros).
 * The file tree's leaves, in key order, are the torrent's non-pad files in order (checked by length). `Left` with
 * the reason when the torrent does not load (v1 torrents included: not this function's business).
 */
export const regenerate = (bytes: Uint8Array): Either.Either<Built, string> => {
  const original = Metainfo.decode(bytes, { v2Only: true })
  if (Either.isLeft(original)) return Either.left(original.left.message)
  const m = original.right
  if (m.version === "v1") return Either.left("a v1 torrent")
  const files = m.files.map((f) => (f.pad ? new Uint8Array(f.length) : new Uint8Array(randomBytes(f.length))))
  const real = m.files.flatMap((f, i) => (f.pad ? [] : [i]))
  const layers = new Map<string, Uint8Array>()
  let k = 0
  const rewrite = (node: Bencode.BDict): Bencode.BDict =>
    new Map([...node].map(([key, v]): [string, Bencode.BValue] => {
      if (!Bencode.isDict(v)) throw new Error(`file tree: ${key} is not a dict`)
      if (key !== "") return [key, rewrite(v)]
      const i = real[k++]!
      const f = m.files[i]!
      if (Number(v.get("length") ?? 0) !== f.length) throw new Error(`file tree order differs at ${f.path.join("/")}`)
      if (!v.has("pieces root")) return [key, v]
      const leaves = Merkle.leafHashes(files[i]!)
      const root = Merkle.fileRoot(leaves)
      if (f.length > m.pieceLength) layers.set(Bytes.toBinaryString(root), Merkle.pieceLayer(leaves, m.pieceLength))
      return [key, new Map([...v, ["pieces root", root]])]
    }))
  // lenient, and only the first value: one fixture has a byte after its dict
  const prefix = Bencode.decodePrefix(bytes, { mode: "lenient" })
  if (Either.isLeft(prefix) || !Bencode.isDict(prefix.right.value)) return Either.left("not a dict")
  const top = prefix.right.value
  const info = top.get("info")
  const tree = Bencode.isDict(info) ? info.get("file tree") : undefined
  if (!Bencode.isDict(info) || !Bencode.isDict(tree)) return Either.left("no file tree")
  const payload = Bytes.concat(files)
  const newInfo = new Map<string, Bencode.BValue>([...info, ["file tree", rewrite(tree)]])
  if (m.version === "hybrid") {
    const pieces: Array<Uint8Array> = []
    for (let at = 0; at < payload.length; at += m.pieceLength) pieces.push(Bytes.sha1(payload.subarray(at, at + m.pieceLength)))
    newInfo.set("pieces", Bytes.concat(pieces))
  }
  const rewritten = Bencode.encode(new Map<string, Bencode.BValue>([...top, ["info", newInfo], ["piece layers", layers]]))
  const decoded = Metainfo.decode(rewritten, { v2Only: true })
  if (Either.isLeft(decoded)) return Either.left(decoded.left.message)
  return Either.right({ metainfo: decoded.right, bytes: rewritten, payload, files })
}

/** Every (non-pad) file of `built` under `dir`, byte for byte (compared by SHA-256, so a failure stays short). */
export const sameFiles = (built: Built, dir: string): void =>
  built.metainfo.files.forEach((f, i) => {
    if (f.pad) return
    expect(sha256(Fs.readFileSync(Path.join(dir, ...f.path))), f.path.join("/")).toBe(sha256(built.files[i]!))
  })

const sha256 = (b: Uint8Array) => createHash("sha256").update(b).digest("hex")

/**
 * A raw v2 peer: dials 127.0.0.1:`port`, handshakes for `metainfo` with the v2 bit, sends `requests` (BEP 52 hash
 * requests) once the answer handshake is in, and gives that handshake and the first `requests.length` hash answers
 * (`hashes` or `hash reject`), within 10 s.
 */
export interface AskedHashes {
  readonly handshake: Handshake.Handshake
  readonly answers: ReadonlyArray<Message.Control>
  /** The payload of the seeder's BEP 10 handshake, when it came before the last answer. */
  readonly extensions: Uint8Array | undefined
}

export const askHashes = (
  port: number,
  metainfo: Metainfo.Metainfo,
  requests: ReadonlyArray<Parameters<typeof Message.HashRequest>[0]>
): Effect.Effect<AskedHashes, unknown> =>
  Effect.async<AskedHashes, unknown>((resume) => {
    const answers: Array<Message.Control> = []
    let handshake: Handshake.Handshake | undefined
    let extensions: Uint8Array | undefined
    const socket = Net.connect(port, "127.0.0.1")
    const decoder = FrameDecoder.make({
      onMessage: (message) => {
        if (message._tag === "Extended" && message.id === 0) extensions ??= message.payload
        if (message._tag !== "Hashes" && message._tag !== "HashReject") return
        answers.push(message)
        if (answers.length === requests.length) {
          socket.destroy()
          resume(Effect.succeed({ handshake: handshake!, answers, extensions }))
        }
      },
      onBlock: () => {}
    }, { pieceCount: metainfo.pieceCount, fast: true, extensionProtocol: true, v2: true })
    const reader = Handshake.reader()
    socket.on("data", (chunk: Uint8Array) => {
      if (handshake === undefined) {
        const p = reader.push(chunk)
        if (p instanceof Error) return resume(Effect.fail(p))
        if (p._tag === "NeedMore") return
        handshake = p.handshake
        for (const r of requests) socket.write(Message.encode(Message.HashRequest(r)))
        chunk = p.rest
      }
      const e = decoder.push(chunk)
      if (e !== undefined) resume(Effect.fail(e))
    })
    socket.on("error", (e) => resume(Effect.fail(e)))
    socket.write(Handshake.encode({
      reserved: Handshake.reserved({ fast: true, extensionProtocol: true, v2: true }),
      infoHash: metainfo.infoHash,
      peerId: new Uint8Array(20).fill(7) as never
    }))
    return Effect.sync(() => socket.destroy())
  }).pipe(Effect.timeout("10 seconds"))
