/**
 * The session's settings from `effect/Config` (environment variables `EFFECT_TORRENT_<NAME>` by default, or any
 * ConfigProvider an application installs), under the flags a command line gives and over the built-in defaults.
 */
import * as Config from "effect/Config"
import * as Option from "effect/Option"
import * as Os from "node:os"
import * as Path from "node:path"
import type * as TorrentInfo from "./TorrentInfo.ts"

/** Built-in defaults (Transmission's queue sizes: 5 downloads, 10 seeds). */
export const defaults = (): TorrentInfo.Settings => ({
  downloadDir: Path.join(Os.homedir(), "Downloads"),
  peerPort: 51413,
  maxActiveDownloads: 5,
  maxActiveSeeds: 10,
  downloadLimit: 0,
  uploadLimit: 0,
  maxConnections: 500,
  maxPeersPerTorrent: 50,
  seedRatio: null,
  seedTime: null,
  watchDir: null,
  dht: true,
  pex: true,
  encryption: "prefer",
  lsd: false,
  transport: "tcp",
  portMapping: false
})

const nonNegative = (name: string) =>
  Config.number(name).pipe(Config.validate({ message: "must be >= 0", validation: (n) => n >= 0 }))
const positiveInt = (name: string) =>
  Config.integer(name).pipe(Config.validate({ message: "must be >= 1", validation: (n) => n >= 1 }))

/** Each setting the environment gives (absent ones are not in the result). */
export const fromConfig: Config.Config<Partial<TorrentInfo.Settings>> = Config.all({
  downloadDir: Config.option(Config.string("DOWNLOAD_DIR")),
  peerPort: Config.option(Config.port("PEER_PORT")),
  maxActiveDownloads: Config.option(positiveInt("MAX_ACTIVE_DOWNLOADS")),
  maxActiveSeeds: Config.option(positiveInt("MAX_ACTIVE_SEEDS")),
  downloadLimit: Config.option(nonNegative("DOWNLOAD_LIMIT")),
  uploadLimit: Config.option(nonNegative("UPLOAD_LIMIT")),
  maxConnections: Config.option(positiveInt("MAX_CONNECTIONS")),
  maxPeersPerTorrent: Config.option(positiveInt("MAX_PEERS_PER_TORRENT")),
  seedRatio: Config.option(nonNegative("SEED_RATIO")),
  seedTime: Config.option(nonNegative("SEED_TIME")),
  watchDir: Config.option(Config.string("WATCH_DIR")),
  dht: Config.option(Config.boolean("DHT")),
  pex: Config.option(Config.boolean("PEX")),
  encryption: Config.option(Config.literal("prefer", "require", "off")("ENCRYPTION"))
}).pipe(
  Config.nested("EFFECT_TORRENT"),
  Config.map((o) => {
    const out: Record<string, unknown> = {}
    for (const [k, v] of Object.entries(o) as Array<[string, Option.Option<unknown>]>) {
      if (Option.isSome(v)) out[k] = v.value
    }
    return out as Partial<TorrentInfo.Settings>
  })
)
