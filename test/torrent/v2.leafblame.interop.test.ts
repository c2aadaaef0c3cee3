/**
 * BEP 52 per-block blame against python3-libtorrent 2.0.8: a v2 piece failing its Merkle check has its leaf hashes
 * asked of a peer (libtorrent, which checked its data and so holds them), the bad 16 KiB blocks found, and only
 * their sender blamed and banned; the good blocks are kept and the download completes byte-identical. The other
 * way, our seeder answers leaf-level hash requests with proofs that verify against the file's root: a raw peer's,
 * and libtorrent's own (leeching from us and a block-corrupting peer, it asks us for a failed piece's leaves and
 * bans the liar, never us).
 */
import { describe, expect, it } from "@effect/vitest"
import * as Fs from "node:fs"
import * as Path from "node:path"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import * as Logger from "effect/Logger"
import * as LogLevel from "effect/LogLevel"
import * as Merkle from "../../src/core/Merkle.ts"
import * as Client from "../../src/session/Client.ts"
import * as Hasher from "../../src/storage/Hasher.ts"
import * as Uploader from "../../src/torrent/Uploader.ts"
import * as ExtensionHandshake from "../../src/wire/ExtensionHandshake.ts"
import { writeData } from "../support/data.ts"
import { download, noTracker, tempDir, testClient } from "../support/download.ts"
import { shouldRun } from "../support/libtorrentSeeder.ts"
import * as Lt from "../support/libtorrentSession.ts"
import { type Built, seed as fakeSeed } from "../support/seeder.ts"
import { askHashes, buildV2, sameFiles } from "../support/v2.ts"
import { stopAfterAll } from "../support/stopAfterAll.ts"

const keep = stopAfterAll()


/** 128 KiB pieces (8 blocks each): a 21-piece file, a one-piece file of 3 blocks, a one-block file. */
const tree = (name: string) =>
  buildV2({
    name,
    format: "v2",
    pieceLength: 131072,
    files: [
      { path: ["big.bin"], length: 20 * 131072 + 1000 },
      { path: ["sub", "three.bin"], length: 3 * 16384 - 10 },
      { path: ["tiny"], length: 100 }
    ]
  })

/** A libtorrent seeder that checked its data (so it holds the leaf hashes; in seed mode it has only the layers). */
const checkedSeeder = (built: Built) =>
  Effect.gen(function*() {
    const lt = keep(yield* Effect.promise(() => Lt.start()))
    const save = Path.join(lt.dir, "t-data")
    built.metainfo.files.forEach((f, i) => {
      if (f.pad) return
      const p = Path.join(save, ...f.path)
      Fs.mkdirSync(Path.dirname(p), { recursive: true })
      Fs.writeFileSync(p, built.files[i]!)
    })
    yield* Effect.promise(() => lt.leech("t", built))
    yield* Effect.promise(() => lt.waitFor("t", (s) => s.seeding, 30_000))
    return lt
  })

describe.runIf(shouldRun("BEP 52 per-block blame with libtorrent"))("v2 per-block blame", { timeout: 90_000 }, () => {
  it.live("a peer corrupting one block of each piece beside an honest libtorrent seeder: only the liar is blamed and banned, good blocks kept", () =>
    Effect.gen(function*() {
      const built = tree("leaf-blame")
      const lt = yield* checkedSeeder(built)
      // the honest seeder slowed (512 KiB/s) so the liar delivers whole pieces before the download is over, and the
      // liar unchokes us only a second after libtorrent saw us (so there is someone to ask for the leaf hashes)
      yield* Effect.promise(() => lt.command({ op: "uplimit", id: "t", up: 512 * 1024 }))
      const ltConnected = lt.waitFor("t", (s) => s.peers.length > 0, 30_000).then(() => new Promise((r) => setTimeout(r, 1000)))
      const liar = keep(yield* Effect.promise(() => fakeSeed(built, { corruptBlock: 3, unchokeWhen: ltConnected })))
      const dir = tempDir("leaf-blame")
      const r = yield* download(built, dir, [liar.port, lt.port]).pipe(Effect.provide(testClient()))
      sameFiles(built, dir)
      const liarKey = `127.0.0.1:${liar.port}`
      const honest = `127.0.0.1:${lt.port}`
      const failed = r.events.flatMap((e) => (e._tag === "PieceFailed" ? [e] : []))
      for (const e of failed) expect(e.peers, `piece ${e.index}`).not.toContain(honest)
      const banned = r.events.flatMap((e) => (e._tag === "PeerBanned" ? [e.addr] : []))
      expect(banned).not.toContain(honest)
      // the liar's pieces were caught block by block: block 3 alone, pinned on it
      const perBlock = failed.filter((e) => e.blocks !== undefined)
      expect(perBlock.length).toBeGreaterThan(0)
      for (const e of perBlock) {
        expect(e.peers).toEqual([liarKey])
        expect(e.blocks).toEqual([3])
      }
      expect(banned).toContain(liarKey)
    }))
})

describe.runIf(shouldRun("BEP 52 leaf requests from libtorrent"))("libtorrent asks us for leaf hashes", { timeout: 90_000 }, () => {
  it.live("libtorrent leeching from our seeder and a block-corrupting peer: its leaf requests to us get proofs it accepts; it completes byte-identical", () =>
    Effect.scoped(Effect.gen(function*() {
      const built = tree("lt-asks-leaves")
      const m = built.metainfo
      const data = tempDir("lt-asks-leaves")
      writeData(built, data)
      const logs: Array<string> = []
      const capture = Logger.replace(Logger.defaultLogger, Logger.make(({ message }) => {
        logs.push(String(Array.isArray(message) ? message.join(" ") : message))
      }))
      const layer = Client.layerWith({ listen: { host: "127.0.0.1", port: 0 } }).pipe(
        Layer.provide(noTracker),
        Layer.provide(Hasher.layerInline)
      )
      const context = yield* Layer.build(layer)
      yield* Client.seed(m, { dataDir: data, trackers: false }).pipe(
        Effect.provide(context),
        Effect.provide(capture),
        Logger.withMinimumLogLevel(LogLevel.Debug)
      )
      const port = (yield* Effect.flatMap(Client.Client, (c) => c.listener).pipe(Effect.provide(context)))!.address.port
      const liar = keep(yield* Effect.promise(() => fakeSeed(built, { corruptBlock: 3 })))
      const lt = keep(yield* Effect.promise(() => Lt.start()))
      const save = yield* Effect.promise(() => lt.leech("l", built))
      yield* Effect.promise(() => lt.command({ op: "connect", id: "l", ip: "127.0.0.1", port: liar.port }))
      yield* Effect.promise(() => lt.command({ op: "connect", id: "l", ip: "127.0.0.1", port }))
      yield* Effect.promise(() => lt.waitFor("l", (s) => s.seeding, 60_000))
      sameFiles(built, save)
      // our seeder answered libtorrent's leaf requests (a failed piece's 8 leaves, proofs to the root) and refused none
      const answered = logs.filter((l) => l.includes("leaf hashes answered"))
      expect(answered.length).toBeGreaterThan(0)
      expect(logs.filter((l) => l.includes("leaf hashes rejected"))).toEqual([])
      // libtorrent pinned the bad blocks on the liar with them: it banned the liar, never us
      const bans = lt.log().split("\n").filter((l) => l.includes("banned peer"))
      expect(bans.some((l) => l.includes(`127.0.0.1:${liar.port}`))).toBe(true)
      expect(bans.filter((l) => l.includes(`127.0.0.1:${port}`))).toEqual([])
    })))
})

describe("v2: leaf-level hash requests answered from our data", () => {
  it.live("a raw v2 peer asking our seeder for leaf hashes (any base below the piece layer, proofs to the root, 46 at once) gets proofs that verify, none rejected", () =>
    Effect.scoped(Effect.gen(function*() {
      const built = tree("leaf-serve")
      const m = built.metainfo
      const data = tempDir("leaf-serve")
      writeData(built, data)
      const layer = Client.layerWith({ listen: { host: "127.0.0.1", port: 0 } }).pipe(
        Layer.provide(noTracker),
        Layer.provide(Hasher.layerInline)
      )
      const context = yield* Layer.build(layer)
      yield* Client.seed(m, { dataDir: data, trackers: false }).pipe(Effect.provide(context))
      const port = (yield* Effect.flatMap(Client.Client, (c) => c.listener).pipe(Effect.provide(context)))!.address.port
      const big = m.files.find((f) => f.path.join("/") === "leaf-serve/big.bin")!
      const three = m.files.find((f) => f.path.join("/") === "leaf-serve/sub/three.bin")!
      const requests = [
        { f: big, base: 0, index: 16, length: 8 },
        { f: big, base: 0, index: 160, length: 4 },
        { f: big, base: 1, index: 8, length: 2 },
        { f: big, base: 0, index: 0, length: 32 },
        { f: three, base: 0, index: 0, length: 4 },
        { f: three, base: 0, index: 2, length: 2 },
        // more at once than are answered at a time (8): the rest wait in line, none is rejected (libtorrent, its
        // leaf requests rejected, bans every peer that sent blocks of the piece)
        ...Array.from({ length: 40 }, (_, k) => ({
          f: big,
          base: 0,
          index: (k * 8) % (Math.floor(Merkle.blockCount(big.length) / 8) * 8),
          length: 8
        }))
      ].map(({ f, base, index, length }) => ({
        file: f,
        request: {
          piecesRoot: f.piecesRoot!,
          base,
          index,
          length,
          proofLayers: Merkle.proofLayersToRoot(base, Merkle.blockCount(f.length))
        }
      }))
      const asked = yield* askHashes(port, m, requests.map((r) => r.request))
      const got = asked.answers
      // the requests it may keep in flight to us (`reqq`): what our uploader queues per peer, not our own pipeline's
      // depth (advertising 250 held a libtorrent leecher to half the requests it keeps in flight to its own seeder)
      const ours = asked.extensions === undefined ? undefined : ExtensionHandshake.decode(asked.extensions)
      expect(ours?._tag === "Right" ? ours.right.reqq : undefined).toBe(Uploader.MAX_QUEUED)
      for (const { file, request } of requests) {
        const answer = got.find((g) => g._tag === "Hashes" && g.index === request.index && g.base === request.base && g.length === request.length && Buffer.compare(g.piecesRoot, request.piecesRoot) === 0)
        expect(answer?._tag, JSON.stringify({ ...request, piecesRoot: undefined })).toBe("Hashes")
        if (answer?._tag !== "Hashes") continue
        expect(Merkle.verify(file.piecesRoot!, Merkle.blockCount(file.length), request, answer.hashes)).toBe(true)
      }
    })))
})
