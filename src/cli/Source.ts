/**
 * What a user names on the command line as a torrent: a `.torrent` path or a magnet URI, read into the typed
 * model with every failure turned into a one-line {@link CliFailure}.
 */
import * as FileSystem from "@effect/platform/FileSystem"
import * as Effect from "effect/Effect"
import * as Either from "effect/Either"
import * as Magnet from "../metainfo/Magnet.ts"
import * as Metainfo from "../metainfo/Metainfo.ts"
import { CliFailure, sanitizeText } from "./Output.ts"

export type Source =
  | { readonly _tag: "Torrent"; readonly path: string; readonly bytes: Uint8Array; readonly metainfo: Metainfo.Metainfo }
  | { readonly _tag: "Magnet"; readonly magnet: Magnet.Magnet }

/** libtorrent refuses .torrent files above 30 MB by default; real ones are far smaller. */
const MAX_TORRENT_BYTES = 64 * 1024 * 1024

const fail = (message: string) => Effect.fail(new CliFailure({ message: sanitizeText(message), exitCode: 1 }))

const systemReason = (e: unknown): string => {
  const s = e as { readonly reason?: string; readonly cause?: { readonly code?: string } }
  const code = s.cause?.code
  if (code === "ENOENT" || s.reason === "NotFound") return "no such file"
  if (code === "EACCES" || code === "EPERM" || s.reason === "PermissionDenied") return "permission denied"
  if (code === "EISDIR") return "is a directory"
  return code ?? s.reason ?? "cannot be read"
}

const readTorrent = (path: string) =>
  Effect.gen(function* () {
    const fs = yield* FileSystem.FileSystem
    const info = yield* fs.stat(path).pipe(Effect.catchAll((e) => fail(`${path}: ${systemReason(e)}`)))
    if (info.type === "Directory") return yield* fail(`${path}: is a directory, not a .torrent file`)
    if (Number(info.size) > MAX_TORRENT_BYTES) {
      return yield* fail(`${path}: ${info.size} bytes is too large for a .torrent file`)
    }
    const bytes = yield* fs.readFile(path).pipe(Effect.catchAll((e) => fail(`${path}: ${systemReason(e)}`)))
    // v2-only torrents load as version "v2": `info` shows them, `download`/`seed`/`verify` check pieces by Merkle root
    const decoded = Metainfo.decode(bytes, { v2Only: true })
    if (Either.isLeft(decoded)) return yield* fail(`${path}: ${decoded.left.message}`)
    return { _tag: "Torrent", path, bytes, metainfo: decoded.right } as const
  })

/** Reads a `.torrent` file or parses a magnet URI (leniently, as libtorrent does for pasted links). */
export const load = (input: string): Effect.Effect<Source, CliFailure, FileSystem.FileSystem> => {
  if (/^magnet:/i.test(input)) {
    const parsed = Magnet.parse(input, { mode: "lenient" })
    return Either.isLeft(parsed)
      ? fail(parsed.left.message)
      : Effect.succeed({ _tag: "Magnet", magnet: parsed.right } as const)
  }
  return readTorrent(input)
}
