/**
 * The typed HTTP API (Api.ts) from the page: same-origin `fetch`, so the browser adds the daemon's credentials
 * (HTTP Basic, asked once when the page loaded) and the `Origin` header its CSRF check requires of every
 * state-changing request. A failure is an {@link ApiFailure} carrying the API's `{ error: { reason, message } }`.
 */
import { type AddParams, type Added, type Detail, type ErrorBody, type FileChanges, type PeerInfo, type Settings, type Summary, torrentContentType, type TrackerInfo } from "./Wire.ts"

export class ApiFailure extends Error {
  readonly status: number
  readonly reason: string
  constructor(status: number, reason: string, message: string) {
    super(message)
    this.status = status
    this.reason = reason
  }
}

const isErrorBody = (u: unknown): u is ErrorBody =>
  typeof u === "object" && u !== null && typeof (u as { error?: { message?: unknown } }).error?.message === "string"

const call = async <A>(method: string, path: string, body?: { readonly type: string; readonly data: BodyInit }): Promise<A> => {
  let response: Response
  try {
    response = await fetch(path, {
      method,
      credentials: "same-origin",
      headers: body === undefined ? { accept: "application/json" } : { accept: "application/json", "content-type": body.type },
      ...(body === undefined ? {} : { body: body.data })
    })
  } catch (e) {
    throw new ApiFailure(0, "unreachable", `the daemon cannot be reached (${e instanceof Error ? e.message : String(e)})`)
  }
  const text = await response.text()
  let json: unknown = undefined
  if (text !== "") {
    try {
      json = JSON.parse(text)
    } catch {
      json = undefined
    }
  }
  if (!response.ok) {
    if (isErrorBody(json)) throw new ApiFailure(response.status, json.error.reason, json.error.message)
    throw new ApiFailure(response.status, "http", `${method} ${path}: HTTP ${response.status}`)
  }
  return json as A
}

const ref = (r: string | number) => encodeURIComponent(String(r))

const query = (params: Readonly<Record<string, string | ReadonlyArray<string> | undefined>>): string => {
  const q = new URLSearchParams()
  for (const [k, v] of Object.entries(params)) {
    if (v === undefined) continue
    for (const one of typeof v === "string" ? [v] : v) q.append(k, one)
  }
  const s = q.toString()
  return s === "" ? "" : `?${s}`
}

export const list = () => call<ReadonlyArray<Summary>>("GET", "/api/torrents")

/** A `.torrent` (its bytes) or a magnet link / http(s) URL (text). */
export const add = (source: Blob | string, params: AddParams = {}) =>
  call<Added>(
    "POST",
    `/api/torrents${query(params)}`,
    typeof source === "string"
      ? { type: "text/plain; charset=utf-8", data: source }
      : { type: torrentContentType, data: source }
  )

export const detail = (r: string | number) => call<Detail>("GET", `/api/torrents/${ref(r)}`)
export const peers = (r: string | number) => call<ReadonlyArray<PeerInfo>>("GET", `/api/torrents/${ref(r)}/peers`)
export const trackers = (r: string | number) => call<ReadonlyArray<TrackerInfo>>("GET", `/api/torrents/${ref(r)}/trackers`)
export const pause = (r: string | number) => call<void>("POST", `/api/torrents/${ref(r)}/pause`)
export const resume = (r: string | number) => call<void>("POST", `/api/torrents/${ref(r)}/resume`)
export const verify = (r: string | number) => call<void>("POST", `/api/torrents/${ref(r)}/verify`)
export const reannounce = (r: string | number) => call<void>("POST", `/api/torrents/${ref(r)}/reannounce`)
export const remove = (r: string | number, deleteData: boolean) =>
  call<void>("DELETE", `/api/torrents/${ref(r)}${query({ deleteData: deleteData ? "true" : undefined })}`)
export const setFiles = (r: string | number, changes: FileChanges) =>
  call<void>("PUT", `/api/torrents/${ref(r)}/files`, { type: "application/json", data: JSON.stringify(changes) })
export const settings = () => call<Settings>("GET", "/api/settings")
export const updateSettings = (patch: Partial<Settings>) =>
  call<Settings>("PATCH", "/api/settings", { type: "application/json", data: JSON.stringify(patch) })

/** Where a file of a torrent streams from (Range requests welcome). */
export const fileUrl = (infoHash: string, index: number) => `/api/torrents/${ref(infoHash)}/files/${index}`

export const eventsUrl = "/api/events"
