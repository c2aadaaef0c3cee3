/**
 * The `Tracker` port: announce to and scrape any tracker URL (http, https, udp). The live implementation
 * (TrackerLive.ts) picks HTTP or UDP by scheme; tests and embedders may provide their own.
 *
 * The request carries plain numbers; where they come from (the torrent's up/down/left counters) is the caller's
 * business (see Announcer.Stats), so this module knows nothing about torrents.
 */
import * as Context from "effect/Context"
import type * as Effect from "effect/Effect"
import type { TrackerError } from "./TrackerError.ts"

export type Event = "none" | "started" | "completed" | "stopped"

export interface AnnounceRequest {
  /** 20 bytes (a v1 info-hash, or a v2 one truncated as BEP 52 says). */
  readonly infoHash: Uint8Array
  /** 20 bytes. */
  readonly peerId: Uint8Array
  readonly port: number
  readonly uploaded: number
  readonly downloaded: number
  readonly left: number
  readonly event: Event
  readonly numwant?: number | undefined
  /** A random 32-bit value that stays the same across announces, so the tracker can recognise us after IP changes. */
  readonly key?: number | undefined
  /** Echoed back from a previous response's `tracker id` (HTTP only). */
  readonly trackerId?: string | undefined
  /**
   * Our message stream encryption, told to HTTP trackers as Transmission and Azureus do: "supported" sends
   * `supportcrypto=1` (trackers that honour it flag us as an encrypting peer), "required" also `requirecrypto=1`
   * (they may then hand us only peers that encrypt). Absent: neither. Not part of the UDP protocol.
   */
  readonly crypto?: "supported" | "required" | undefined
}

export interface Peer {
  /** Dotted IPv4 or (unbracketed) IPv6 text. */
  readonly ip: string
  readonly port: number
  /** Present only in dictionary-model HTTP responses. */
  readonly peerId?: Uint8Array | undefined
}

export interface AnnounceResponse {
  /** Seconds until the next regular announce. */
  readonly interval: number
  /** Seconds; never re-announce sooner than this. */
  readonly minInterval?: number | undefined
  readonly trackerId?: string | undefined
  /** IPv4 and IPv6 peers together. */
  readonly peers: ReadonlyArray<Peer>
  /** Seeders. */
  readonly complete?: number | undefined
  /** Leechers. */
  readonly incomplete?: number | undefined
  readonly warning?: string | undefined
}

export interface ScrapeEntry {
  readonly seeders: number
  readonly completed: number
  readonly leechers: number
}

/** Scrape results keyed by the info-hash in lower-case hex. Info-hashes the tracker does not know are absent. */
export type ScrapeResponse = ReadonlyMap<string, ScrapeEntry>

export interface Service {
  readonly announce: (url: string, request: AnnounceRequest) => Effect.Effect<AnnounceResponse, TrackerError>
  readonly scrape: (url: string, infoHashes: ReadonlyArray<Uint8Array>) => Effect.Effect<ScrapeResponse, TrackerError>
}

export class Tracker extends Context.Tag("effect-torrent/Tracker")<Tracker, Service>() {}
