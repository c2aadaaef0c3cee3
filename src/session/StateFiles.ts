/**
 * What a client keeps in its state directory besides resume records (ResumeRecord.ts says why a state directory):
 * - `<infohash-hex>.torrent`: the metadata a magnet link's peers sent (BEP 9), so a restarted magnet download
 *   starts at once instead of asking peers again; checked against the info-hash when read.
 * - `dht.json`: the DHT routing table (RoutingTable.Snapshot), reloaded at the next start so the node does not
 *   depend on the bootstrap routers every time.
 * Written atomically (AtomicFile.ts: temp file, fsync, rename, directory fsync). A missing file is simply absent;
 * an unreadable or unusable one is absent too, with a warning that names it (see `unusable` for EBADF).
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

/**
 * How a state file's failure surfaces. These files are a convenience (a missing or unusable one only costs a fetch
 * or a bootstrap), so an ordinary failure is logged as a warning with the file and what went wrong, never dropped.
 * EBADF (`ResumeRecord.isBadDescriptor`: a descriptor of ours closed under us, i.e. a descriptor number closed twice
 * somewhere in the process) is logged as an error and raised as a defect carrying the typed `ResumeError`, which
 * no `catchAll`/`ignore` of a caller absorbs.
 */
const unusable = <A>(what: string, e: ResumeRecord.ResumeError, fallback: A): Effect.Effect<A> =>
  ResumeRecord.isBadDescriptor(e)
    ? Effect.zipRight(Effect.logError(`${what}: ${e.message}`), Effect.die(e))
    : Effect.as(Effect.logWarning(`${what}: ${e.message}`), fallback)

/** The cached metadata of a magnet link, when present and matching its info-hash (anything else is logged). */
export const loadTorrent = (
  stateDir: string,
  infoHash: InfoHashV1
): Effect.Effect<Option.Option<{ readonly bytes: Uint8Array; readonly metainfo: Metainfo.Metainfo }>> => {
  const path = torrentPath(stateDir, infoHash)
  return ResumeRecord.read(path).pipe(
    Effect.flatMap(Option.match({
      onNone: () => Effect.succeed(Option.none()),
      onSome: (bytes) => {
        const m = Metainfo.decode(bytes, { v2Only: true })
        if (Either.isLeft(m)) {
          return Effect.as(Effect.logWarning(`ignoring the cached metadata ${path}: ${m.left.message}`), Option.none())
        }
        if (!Bytes.equals(m.right.infoHash, infoHash)) {
          return Effect.as(
            Effect.logWarning(`ignoring the cached metadata ${path}: it is another torrent's`),
            Option.none()
          )
        }
        return Effect.succeed(Option.some({ bytes, metainfo: m.right }))
      }
    })),
    Effect.catchAll((e) => unusable("ignoring the cached metadata", e, Option.none())),
    Effect.provide(NodeFileSystem.layer)
  )
}

export const saveTorrent = (stateDir: string, infoHash: InfoHashV1, bytes: Uint8Array): Effect.Effect<void> =>
  ResumeRecord.writeAtomic(torrentPath(stateDir, infoHash), bytes).pipe(
    Effect.catchAll((e) => unusable("could not keep the fetched metadata", e, undefined)),
    Effect.provide(NodeFileSystem.layer)
  )

/** The saved routing table, when present and readable (anything else is logged). */
export const loadDht = (stateDir: string): Effect.Effect<RoutingTable.Snapshot | undefined> => {
  const path = dhtPath(stateDir)
  return ResumeRecord.read(path).pipe(
    Effect.flatMap(Option.match({
      onNone: () => Effect.succeed(undefined),
      onSome: (bytes) =>
        Effect.try(() => JSON.parse(Bytes.decodeUtf8(bytes) ?? "") as RoutingTable.Snapshot | null).pipe(
          Effect.map((snapshot) => snapshot ?? undefined),
          Effect.catchAll(() =>
            Effect.as(Effect.logWarning(`ignoring the saved DHT routing table ${path}: not valid JSON`), undefined)
          )
        )
    })),
    Effect.catchAll((e) => unusable("ignoring the saved DHT routing table", e, undefined)),
    Effect.provide(NodeFileSystem.layer)
  )
}

export const saveDht = (stateDir: string, snapshot: RoutingTable.Snapshot): Effect.Effect<void> =>
  ResumeRecord.writeAtomic(dhtPath(stateDir), Bytes.encodeUtf8(JSON.stringify(snapshot))).pipe(
    Effect.catchAll((e) => unusable("could not save the DHT routing table", e, undefined)),
    Effect.provide(NodeFileSystem.layer)
  )
