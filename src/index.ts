/**
 * The public library surface of effect-torrent (`import { Client, Metainfo } from "effect-torrent"`): namespace
 * re-exports of the modules an application composes. The daemon's HTTP API and its typed client are the
 * `effect-torrent/api` entry (api.ts). Everything else under src/ is internal and may change in any release.
 */
// Torrents and magnet links: decode, inspect, make.
export * as Bencode from "./bencode/Bencode.ts"
export * as InfoHash from "./core/InfoHash.ts"
export * as Create from "./metainfo/Create.ts"
export * as FileLayout from "./metainfo/FileLayout.ts"
export * as Magnet from "./metainfo/Magnet.ts"
export * as Metainfo from "./metainfo/Metainfo.ts"
export * as TorrentFile from "./metainfo/TorrentFile.ts"
// The client: one download or seed at a time (Client), or many torrents with a queue and a state directory (Session).
export * as Client from "./session/Client.ts"
export * as Session from "./session/Session.ts"
export * as SessionConfig from "./session/SessionConfig.ts"
export * as SessionLive from "./session/SessionLive.ts"
export * as TorrentInfo from "./session/TorrentInfo.ts"
export * as Torrent from "./torrent/Torrent.ts"
export * as TorrentError from "./torrent/TorrentError.ts"
export * as TorrentEvent from "./torrent/TorrentEvent.ts"
export * as FileSelection from "./torrent/FileSelection.ts"
export * as Encryption from "./peer/Encryption.ts"
// Data on disk: storage ports, hashing, a read-only check, making a torrent's hashes.
export * as Creator from "./storage/Creator.ts"
export * as FileStorage from "./storage/FileStorage.ts"
export * as Hasher from "./storage/Hasher.ts"
export * as MemoryStorage from "./storage/MemoryStorage.ts"
export * as Storage from "./storage/Storage.ts"
export * as Verify from "./storage/Verify.ts"
export * as VerifyReport from "./storage/VerifyReport.ts"
// Trackers: one announce or scrape (Tracker, TrackerLive), or a BEP 12 re-announce stream (Announcer).
export * as Announcer from "./tracker/Announcer.ts"
export * as Tracker from "./tracker/Tracker.ts"
export * as TrackerLive from "./tracker/TrackerLive.ts"
