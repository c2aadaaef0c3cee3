/**
 * What a client keeps in its state directory besides resume records (ResumeRecord.ts says why a state directory):
 * - `<infohash-hex>.torrent`: the metadata a magnet link's peers sent (BEP 9), so a restarted magnet download
 *   starts at once instead of asking peers again; checked against the info-hash when read.
 * - `dht.json`: the DHT routing table (RoutingTable.Snapshot), reloaded at the next start so the node does not
 *   depend on the bootstrap routers every time.
 * Written atomically (temp file, fsync, rename); a missing or unreadable file is simply absent.
 */
import * as NodeFileSystem from "@effect/platform-node/NodeFileSystem"
import * as Effect from "effect/Effect"
import * as Either from "effect/Either"
import * as Option from "effect/Option"
import * as Path from "node:path"
import * as Bytes from "../core/Bytes.ts"
import type { InfoHashV1 } from "../core/InfoHash.ts"
import type * as RoutingTable from "../dht/RoutingTable.ts"
import * as Metainfo from "../metainfo/Metainfo.ts"
import * as ResumeRecord from "../storage/ResumeRecord.ts"

export const torrentPath = (stateDir: string, infoHash: InfoHashV1): string =>
  Path.join(stateDir, `${Bytes.toHex(infoHash)}.torrent`)

export const dhtPath = (stateDir: string): string => Path.join(stateDir, "dht.json")

/** The cached metadata of a magnet link, when present and matching its info-hash. */
export const loadTorrent = (
  stateDir: string,
  infoHash: InfoHashV1
): Effect.Effect<Option.Option<{ readonly bytes: Uint8Array; readonly metainfo: Metainfo.Metainfo }>> =>
  ResumeRecord.read(torrentPath(stateDir, infoHash)).pipe(
    Effect.map(Option.flatMap((bytes) => {
      const m = Metainfo.decode(bytes)
      return Either.isRight(m) && Bytes.equals(m.right.infoHash, infoHash)
        ? Option.some({ bytes, metainfo: m.right })
        : Option.none()
    })),
    Effect.orElseSucceed(() => Option.none()),
    Effect.provide(NodeFileSystem.layer)
  )

export const saveTorrent = (stateDir: string, infoHash: InfoHashV1, bytes: Uint8Array): Effect.Effect<void> =>
  ResumeRecord.writeAtomic(torrentPath(stateDir, infoHash), bytes).pipe(
    Effect.catchAll((e) => Effect.logWarning(`could not keep the fetched metadata: ${e.message}`)),
    Effect.provide(NodeFileSystem.layer)
  )

export const loadDht = (stateDir: string): Effect.Effect<RoutingTable.Snapshot | undefined> =>
  ResumeRecord.read(dhtPath(stateDir)).pipe(
    Effect.map(Option.match({
      onNone: () => undefined,
      onSome: (bytes) => {
        try {
          return JSON.parse(Bytes.decodeUtf8(bytes) ?? "null") as RoutingTable.Snapshot
        } catch {
          return undefined
        }
      }
    })),
    Effect.orElseSucceed(() => undefined),
    Effect.provide(NodeFileSystem.layer)
  )

export const saveDht = (stateDir: string, snapshot: RoutingTable.Snapshot): Effect.Effect<void> =>
  ResumeRecord.writeAtomic(dhtPath(stateDir), Bytes.encodeUtf8(JSON.stringify(snapshot))).pipe(
    Effect.catchAll((e) => Effect.logWarning(`could not save the DHT routing table: ${e.message}`)),
    Effect.provide(NodeFileSystem.layer)
  )
