/**
 * What the UI receives and sends, as the API's own Schemas describe it on the wire (their `Encoded` side): the
 * imports are type-only, so the bundle carries no Schema code, and a change to TorrentInfo.ts or Api.ts that the
 * UI does not follow fails `npm run typecheck`.
 */
import type * as Api from "../api/Api.ts"
import type * as ApiError from "../api/ApiError.ts"
import type * as TorrentInfo from "../session/TorrentInfo.ts"
import type * as Schema from "effect/Schema"

type Wire<S extends Schema.Schema.Any> = Schema.Schema.Encoded<S>

export type Summary = Wire<typeof TorrentInfo.Summary>
export type Detail = Wire<typeof TorrentInfo.Detail>
export type FileInfo = Wire<typeof TorrentInfo.FileInfo>
export type PeerInfo = Wire<typeof TorrentInfo.PeerInfo>
export type TrackerInfo = Wire<typeof TorrentInfo.TrackerInfo>
export type Settings = Wire<typeof TorrentInfo.Settings>
export type Added = Wire<typeof TorrentInfo.Added>
export type FileChanges = Wire<typeof TorrentInfo.FileChanges>
export type SessionEvent = Wire<typeof TorrentInfo.SessionEvent>
export type State = Wire<typeof TorrentInfo.State>
export type Priority = Wire<typeof TorrentInfo.Priority>
export type AddParams = Wire<typeof Api.AddParams>
export type ErrorBody = Wire<typeof ApiError.ApiError>

/** `POST /api/torrents`'s body type for a `.torrent`. */
export const torrentContentType: typeof Api.TorrentContentType = "application/x-bittorrent"
