/**
 * Downloads from real seeders found through a real tracker (opentracker on 127.0.0.1): the torrent with the
 * tracker's URL added (same info dict, same info-hash), a wait until the tracker counts the seeders, a client with
 * the live tracker restricted to loopback, a libtorrent-made torrent with BEP 47 pad files, and the checks every such
 * test makes (SHA-256 per file, nothing but the torrent's data files on disk).
 */
import { execFileSync } from "node:child_process"
import { createHash, randomBytes } from "node:crypto"
import * as Fs from "node:fs"
import * as Os from "node:os"
import * as Path from "node:path"
import * as Either from "effect/Either"
import * as Layer from "effect/Layer"
import { expect } from "@effect/vitest"
import * as Bencode from "../../src/bencode/Bencode.ts"
import * as Bytes from "../../src/core/Bytes.ts"
import * as Metainfo from "../../src/metainfo/Metainfo.ts"
import * as Destination from "../../src/net/Destination.ts"
import * as Client from "../../src/session/Client.ts"
import * as Hasher from "../../src/storage/Hasher.ts"
import * as Restricted from "../../src/tracker/Restricted.ts"
import * as TrackerLive from "../../src/tracker/TrackerLive.ts"
import { PYTHON } from "./libtorrentSeeder.ts"
import type { Built } from "./seeder.ts"

export const sha256 = (b: Uint8Array): string => createHash("sha256").update(b).digest("hex")

export const hexOf = (b: Built): string => Bytes.toHex(b.metainfo.infoHash)

/** The same torrent (info dict byte for byte, so the same info-hash) with `announce` set to `url`. */
export const withAnnounce = (b: Built, url: string): Built => {
  const decoded = Bencode.decode(b.bytes)
  if (Either.isLeft(decoded) || !Bencode.isDict(decoded.right)) throw new Error("cannot re-read the torrent")
  const top = new Map(decoded.right)
  top.set("announce", Bytes.encodeUtf8(url))
  top.delete("announce-list")
  const bytes = Bencode.encode(top)
  const m = Metainfo.decode(bytes)
  if (Either.isLeft(m)) throw new Error(m.left.message)
  return { ...b, metainfo: m.right, bytes }
}

/** Polls the tracker's scrape until it counts at least `seeders` complete peers for `b` (bounded). */
export const untilSeeders = async (trackerPort: number, b: Built, seeders: number, timeoutMs = 30_000) => {
  const ih = hexOf(b).replace(/../g, "%$&")
  const deadline = Date.now() + timeoutMs
  let body = ""
  while (Date.now() < deadline) {
    body = await fetch(`http://127.0.0.1:${trackerPort}/scrape?info_hash=${ih}`).then((r) => r.text(), () => "")
    const m = /8:completei(\d+)e/.exec(body)
    if (m !== null && Number(m[1]) >= seeders) return
    await new Promise((r) => setTimeout(r, 100))
  }
  throw new Error(`the tracker did not count ${seeders} seeder(s) within ${timeoutMs} ms (scrape: ${body})`)
}

/**
 * A client that announces to the torrent's trackers (the live tracker client, loopback only; peers too) and hashes
 * as the CLI does (a worker pool above 1 MiB). It listens on 127.0.0.1, so the port it announces is its own.
 */
export const trackedClient = (options: Client.ClientOptions = {}): Layer.Layer<Client.Client> => {
  process.env["EFFECT_TORRENT_LOOPBACK_ONLY"] = "1"
  return Client.layerWith({
    noPeersTimeout: "30 seconds",
    listen: { host: "127.0.0.1", port: 0 },
    peerConfig: { requestTimeout: 5_000, connectTimeout: 2_000 },
    ...options
  }).pipe(
    Layer.provide(Restricted.restrict(Destination.isLoopbackHost).pipe(Layer.provide(TrackerLive.layer()))),
    Layer.provide(Hasher.layer)
  )
}

/** Every data file of `b` under `dir` is byte-identical (SHA-256) to the payload's. */
export const expectIdentical = (b: Built, dir: string): void =>
  b.metainfo.files.forEach((f, i) => {
    if (f.pad) return
    expect(sha256(Fs.readFileSync(Path.join(dir, ...f.path))), f.path.join("/")).toBe(sha256(b.files[i]!))
  })

/** Every regular file under `dir`, relative, sorted. */
export const filesUnder = (dir: string): Array<string> =>
  (Fs.readdirSync(dir, { recursive: true, withFileTypes: true }) as Array<Fs.Dirent>)
    .filter((e) => e.isFile())
    .map((e) => Path.relative(dir, Path.join(e.parentPath, e.name)))
    .sort()

/** `dir` holds exactly the torrent's data files: no pad file, nothing else. */
export const expectOnlyDataFiles = (b: Built, dir: string): void =>
  expect(filesUnder(dir)).toEqual(b.metainfo.files.filter((f) => !f.pad).map((f) => Path.join(...f.path)).sort())

const CREATE = `
import libtorrent as lt, sys
root, name, piece_len = sys.argv[1], sys.argv[2], int(sys.argv[3])
fs = lt.file_storage()
lt.add_files(fs, root + "/" + name)
ct = lt.create_torrent(fs, piece_len, flags=lt.create_torrent.v1_only | lt.create_torrent.canonical_files)
lt.set_piece_hashes(ct, root)
sys.stdout.buffer.write(lt.bencode(ct.generate()))
`

/**
 * A multi-file torrent made by libtorrent's `create_torrent` with `canonical_files` (BEP 47 pad files after every
 * file that does not end on a piece boundary, the last one included), over random files of the given sizes.
 */
export const libtorrentPadded = (
  name: string,
  files: ReadonlyArray<{ readonly path: string; readonly length: number }>,
  pieceLength: number
): Built => {
  const root = Fs.mkdtempSync(Path.join(Os.tmpdir(), "lt-create-"))
  try {
    const content = new Map<string, Uint8Array>()
    for (const f of files) {
      const data = new Uint8Array(randomBytes(f.length))
      const full = Path.join(root, name, f.path)
      Fs.mkdirSync(Path.dirname(full), { recursive: true })
      Fs.writeFileSync(full, data)
      content.set(Path.join(name, f.path), data)
    }
    const bytes = new Uint8Array(
      execFileSync(PYTHON, ["-c", CREATE, root, name, String(pieceLength)], { maxBuffer: 64 * 1024 * 1024 })
    )
    const m = Metainfo.decode(bytes)
    if (Either.isLeft(m)) throw new Error(m.left.message)
    const perFile = m.right.files.map((f) => {
      if (f.pad) return new Uint8Array(f.length)
      const c = content.get(Path.join(...f.path))
      if (c === undefined) throw new Error(`libtorrent listed a file we did not write: ${f.path.join("/")}`)
      return c
    })
    const payload = new Uint8Array(perFile.reduce((n, f) => n + f.length, 0))
    let at = 0
    for (const f of perFile) {
      payload.set(f, at)
      at += f.length
    }
    return { metainfo: m.right, bytes, payload, files: perFile }
  } finally {
    Fs.rmSync(root, { recursive: true, force: true })
  }
}
