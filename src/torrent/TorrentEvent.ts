/**
 * What a running torrent tells the outside world (progress bars, `--json` output, library users), published on a
 * sliding `PubSub`: a slow subscriber loses old events, it never slows the download.
 */
import * as Data from "effect/Data"
import type { PeerSource } from "./PeerSource.ts"

export type TorrentEvent = Data.TaggedEnum<{
  /** A magnet link's metadata is being fetched: connected peers, those offering it, pieces received / total. */
  MetadataProgress: {
    readonly peers: number
    readonly sources: number
    readonly received: number
    readonly total: number
  }
  /** The metadata arrived and matched the info-hash; the download starts. */
  MetadataReceived: { readonly name: string; readonly size: number }
  /** Resume check of data already in the output directory. */
  Checking: { readonly checked: number; readonly total: number }
  /** The check is done; downloading starts. */
  Started: { readonly pieces: number; readonly have: number; readonly bytesLeft: number }
  PieceVerified: { readonly index: number }
  /**
   * The piece's hash did not match; `peers` contributed blocks to it. With `blocks` (BEP 52 per-block blame): those
   * blocks failed their leaf hashes, `peers` sent them, and the piece's other blocks were kept.
   */
  PieceFailed: {
    readonly index: number
    readonly peers: ReadonlyArray<string>
    readonly blocks?: ReadonlyArray<number> | undefined
  }
  /**
   * `encryption`: "rc4" or "plaintext" after an MSE handshake (docs/ENCRYPTION.md), "none" for plain BitTorrent.
   * `transport`: TCP or uTP. `source`: where the peer came from first (PeerSource.ts), `sources` all that named it.
   */
  PeerConnected: {
    readonly addr: string
    readonly encryption: "rc4" | "plaintext" | "none"
    readonly transport: "tcp" | "utp"
    readonly source: PeerSource
    readonly sources: ReadonlyArray<PeerSource>
  }
  PeerDisconnected: { readonly addr: string; readonly reason: string }
  /** The peer is dropped and never contacted again. */
  PeerBanned: { readonly addr: string; readonly reason: string }
  TrackerWarning: { readonly url: string; readonly message: string }
  TrackerError: { readonly url: string; readonly message: string }
  /** Once a second while downloading. Bytes; rates in bytes per second; `total`: bytes of wanted pieces. */
  Progress: {
    readonly downloaded: number
    readonly uploaded: number
    readonly downRate: number
    readonly upRate: number
    readonly peers: number
    readonly have: number
    readonly pieces: number
    readonly bytesLeft: number
    readonly total: number
  }
  /** Every wanted piece is verified and flushed to storage. */
  Completed: {}
}>

export const {
  $is,
  $match,
  Checking,
  Completed,
  MetadataProgress,
  MetadataReceived,
  PeerBanned,
  PeerConnected,
  PeerDisconnected,
  PieceFailed,
  PieceVerified,
  Progress,
  Started,
  TrackerError,
  TrackerWarning
} = Data.taggedEnum<TorrentEvent>()

/** A plain JSON-friendly object for `--json` output: `{ "event": tag, ...fields }`. */
export const toJson = (event: TorrentEvent): Record<string, unknown> => {
  const { _tag, ...rest } = event
  return { event: _tag, ...rest }
}
