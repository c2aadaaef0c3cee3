/**
 * Fuzz targets: every decoder that reads bytes or text from a file or the network, each with a corpus of valid
 * inputs to mutate. A target "passes" a case when its decoder returns (Right or Left) without throwing. Shared by the
 * long campaign (`npm run fuzz`, fuzz/campaign.ts) and the modest CI run (test/fuzz.test.ts).
 */
import { readdirSync, readFileSync, statSync } from "node:fs"
import { join } from "node:path"
import * as Bencode from "../src/bencode/Bencode.ts"
import * as Bitfield from "../src/core/Bitfield.ts"
import type { InfoHashV1, PeerId } from "../src/core/InfoHash.ts"
import * as Merkle from "../src/core/Merkle.ts"
import * as Magnet from "../src/metainfo/Magnet.ts"
import * as Metainfo from "../src/metainfo/Metainfo.ts"
import * as ResumeRecord from "../src/storage/ResumeRecord.ts"
import * as HttpCodec from "../src/tracker/HttpCodec.ts"
import * as UdpCodec from "../src/tracker/UdpCodec.ts"
import * as FrameDecoder from "../src/wire/FrameDecoder.ts"
import * as Handshake from "../src/wire/Handshake.ts"
import * as Message from "../src/wire/Message.ts"
import * as ExtensionHandshake from "../src/wire/ExtensionHandshake.ts"
import * as Mse from "../src/wire/Mse.ts"
import * as UtHolepunch from "../src/wire/UtHolepunch.ts"
import * as UtMetadata from "../src/wire/UtMetadata.ts"
import * as UtPex from "../src/wire/UtPex.ts"
import * as Krpc from "../src/dht/Krpc.ts"

export interface Target {
  readonly name: string
  /** Runs the decoder; must not throw. */
  readonly run: (input: Uint8Array) => unknown
  /** Valid inputs whose mutations reach deep into the decoder. */
  readonly corpus: ReadonlyArray<Uint8Array>
}

const text = new TextEncoder()
const bytes = (n: number, seed: number) => Uint8Array.from({ length: n }, (_, i) => (i * 31 + seed * 17) & 0xff)

const fixtureTorrents = (fixturesDir: string | undefined): Array<Uint8Array> => {
  if (fixturesDir === undefined) return []
  const out: Array<Uint8Array> = []
  const walk = (dir: string) => {
    for (const name of readdirSync(dir)) {
      const p = join(dir, name)
      if (statSync(p).isDirectory()) walk(p)
      else if (name.endsWith(".torrent") && statSync(p).size <= 64 * 1024) out.push(new Uint8Array(readFileSync(p)))
    }
  }
  try {
    walk(join(fixturesDir, "torrents"))
  } catch {
    return []
  }
  return out
}

const fixtureMagnets = (fixturesDir: string | undefined): Array<Uint8Array> => {
  if (fixturesDir === undefined) return []
  try {
    return readFileSync(join(fixturesDir, "magnets.txt"), "utf8")
      .split("\n")
      .filter((l) => l.startsWith("magnet:"))
      .map((l) => text.encode(l))
  } catch {
    return []
  }
}

const utf8 = new TextDecoder()

export const targets = (fixturesDir?: string): ReadonlyArray<Target> => {
  const torrents = fixtureTorrents(fixturesDir)
  const hand = Bencode.encode({
    announce: "http://127.0.0.1:1/announce",
    info: { name: "a", "piece length": 16384, length: 20000, pieces: bytes(40, 1) }
  })
  const infoHash = bytes(20, 2) as InfoHashV1
  const peerId = bytes(20, 3) as PeerId
  const frames = Message.encodeBatch([
    Message.Bitfield({ bytes: new Uint8Array([0xff, 0x80]) }),
    Message.Have({ index: 3 }),
    Message.Unchoke(),
    Message.Request({ index: 1, begin: 16384, length: 16384 }),
    Message.Piece({ index: 0, begin: 0, block: bytes(1000, 4) }),
    Message.Extended({ id: 0, payload: Bencode.encode({ m: { ut_metadata: 1 } }) }),
    Message.KeepAlive(),
    Message.Port({ port: 6881 })
  ])
  const tree = Merkle.fromLeaves(bytes(1000 * 32, 14))
  const range = { base: 0, index: 256, length: 16, proofLayers: Merkle.proofLayersToRoot(0, 1000) }
  const hashFrames = Message.encodeBatch([
    Message.HashRequest({ piecesRoot: tree.root, ...range }),
    Message.Hashes({ piecesRoot: tree.root, ...range, hashes: Merkle.proof(tree, range)! }),
    Message.HashReject({ piecesRoot: tree.root, base: 4, index: 0, length: 64, proofLayers: 5 }),
    Message.Have({ index: 3 })
  ])
  const resume = ResumeRecord.encode({
    version: ResumeRecord.VERSION,
    infoHash,
    pieceCount: 9,
    pieceLength: 16384,
    verified: Bitfield.full(9),
    files: [{ path: ["a", "b"], size: 100000, mtimeMs: 1700000000000 }, { path: ["c"], size: 47456, mtimeMs: 1 }],
    savedAt: 1700000000000
  })
  return [
    {
      name: "bencode",
      run: (b) => [Bencode.decode(b), Bencode.decode(b, { mode: "lenient" }), Bencode.decodePrefix(b)],
      corpus: [hand, ...torrents.slice(0, 40)]
    },
    { name: "metainfo", run: (b) => [Metainfo.decode(b), Metainfo.decode(b, { v2Only: true })], corpus: [hand, ...torrents] },
    {
      name: "magnet",
      run: (b) => {
        const s = utf8.decode(b)
        return [Magnet.parse(s), Magnet.parse(s, { mode: "lenient" })]
      },
      corpus: [
        text.encode("magnet:?xt=urn:btih:c9e15763f722f23e98a29decdfae341b98d53056&dn=x&tr=udp%3A%2F%2Fa%3A1&x.pe=[::1]:5&so=0,2-4"),
        ...fixtureMagnets(fixturesDir)
      ]
    },
    {
      name: "wire-frames",
      run: (b) => [
        FrameDecoder.decodeAll(b, { pieceCount: 9 }),
        FrameDecoder.decodeAll(b, { fast: false }),
        FrameDecoder.decodeAll(b, { v2: true, pieceCount: 9 })
      ],
      corpus: [frames, hashFrames]
    },
    {
      // BEP 52 hash messages decoded and their proofs checked, as a v2 session would
      name: "wire-hashes",
      run: (b) => {
        const r = FrameDecoder.decodeAll(b, { v2: true })
        if (r._tag === "Right") {
          for (const m of r.right) {
            if (m._tag === "Hashes") Merkle.verify(m.piecesRoot, 1000, m, m.hashes)
            if (m._tag === "HashRequest") Merkle.checkRange(m, 1000)
          }
        }
        return r
      },
      corpus: [hashFrames]
    },
    {
      name: "handshake",
      run: (b) => {
        const r = Handshake.reader()
        return [Handshake.decode(b), r.push(b), Handshake.supportsV2(b.subarray(20, 28))]
      },
      corpus: [
        Handshake.encode({ reserved: Handshake.reserved({ extensionProtocol: true, fast: true }), infoHash, peerId }),
        Handshake.encode({ reserved: Handshake.reserved({ extensionProtocol: true, fast: true, v2: true }), infoHash, peerId })
      ]
    },
    {
      name: "tracker-http",
      run: (b) => [HttpCodec.decodeAnnounce(b), HttpCodec.decodeScrape(b)],
      corpus: [
        HttpCodec.encodeAnnounce({
          interval: 1800,
          minInterval: 60,
          complete: 3,
          incomplete: 4,
          peers: [{ ip: "127.0.0.1", port: 6881 }, { ip: "::1", port: 51413 }]
        }),
        Bencode.encode({ "failure reason": "unregistered torrent" }),
        Bencode.encode({ interval: 60, peers: [{ ip: "127.0.0.2", port: 1, "peer id": bytes(20, 5) }] })
      ]
    },
    {
      name: "tracker-udp",
      run: (b) => [UdpCodec.decodeResponse(b, 4), UdpCodec.decodeResponse(b, 6), UdpCodec.decodeRequest(b)],
      corpus: [
        UdpCodec.encodeResponse({ _tag: "Connect", transactionId: 7, connectionId: 0x1234567890n }),
        UdpCodec.encodeResponse({
          _tag: "Announce",
          transactionId: 8,
          interval: 900,
          leechers: 1,
          seeders: 2,
          peers: [{ ip: "127.0.0.1", port: 6881 }]
        }),
        UdpCodec.encodeResponse({ _tag: "Error", transactionId: 9, message: "nope" })
      ]
    },
    {
      name: "extensions",
      run: (b) => [
        ExtensionHandshake.decode(b),
        ExtensionHandshake.decode(b, { lenient: true }),
        UtMetadata.decode(b),
        UtPex.decode(b),
        UtHolepunch.decode(b)
      ],
      corpus: [
        ExtensionHandshake.encode(
          ExtensionHandshake.ours(ExtensionHandshake.defaultRegistry(), { v: "effect-torrent 0.1.0", p: 6881, reqq: 250, metadataSize: 31000 })
        ),
        UtMetadata.encode(UtMetadata.Request({ piece: 1 })),
        UtMetadata.encode(UtMetadata.Data({ piece: 1, totalSize: 31000, bytes: bytes(31000 - 16384, 13) })),
        UtPex.encode({
          added: [{ ip: "127.0.0.1", port: 6881, flags: 0x10 }, { ip: "::1", port: 51413, flags: 0x01 }],
          dropped: [{ ip: "127.0.0.2", port: 1 }]
        }),
        UtHolepunch.encode(UtHolepunch.rendezvous({ ip: "10.0.0.1", port: 6881 }))!,
        UtHolepunch.encode(UtHolepunch.error({ ip: "2001:db8::1", port: 51413 }, UtHolepunch.ErrorCode.NoSupport))!
      ]
    },
    {
      name: "krpc",
      run: (b) => Krpc.decode(b),
      corpus: [
        Krpc.encode({ _tag: "Query", t: bytes(2, 6), id: bytes(20, 7), method: "get_peers", infoHash }),
        Krpc.encode({
          _tag: "Response",
          t: bytes(2, 8),
          id: bytes(20, 9),
          token: bytes(8, 10),
          nodes: [{ id: bytes(20, 11), ip: "127.0.0.1", port: 6881 }],
          values: [{ ip: "127.0.0.2", port: 51413 }]
        }),
        Krpc.encode({ _tag: "Error", t: bytes(2, 12), code: 203, message: "Protocol Error" })
      ]
    },
    {
      // Both ends of the MSE handshake fed hostile bytes after their own start().
      name: "mse",
      run: (b) => {
        const r = Mse.responder({ lookupInfoHash: () => infoHash, cryptoAllowed: Mse.CRYPTO_RC4 | Mse.CRYPTO_PLAINTEXT })
        r.start()
        const i = Mse.initiator({ infoHash, cryptoProvide: Mse.CRYPTO_RC4 | Mse.CRYPTO_PLAINTEXT })
        i.start()
        return [r.push(b), i.push(b), Mse.classify(b)]
      },
      corpus: [
        (() => {
          const i = Mse.initiator({ infoHash, cryptoProvide: Mse.CRYPTO_RC4, maxPadding: 16 })
          return i.start()
        })()
      ]
    },
    {
      name: "resume-record",
      run: (b) => [ResumeRecord.decode(b), ResumeRecord.decode(b, { infoHash, pieceCount: 9, pieceLength: 16384 })],
      corpus: [resume]
    }
  ]
}
