/**
 * The `Content-Type` of a file served from a torrent, from its extension. Media players need the right one to
 * play a file while it downloads; everything unknown is `application/octet-stream`.
 *
 * Nothing that a browser would run is ever labelled as such: a torrent's `.html`, `.svg`, `.xml` or `.js` is served
 * as `application/octet-stream` (with `nosniff` and a sandboxing CSP, see Security.ts), because a page served from
 * the daemon's origin could call its API.
 */

const TYPES: ReadonlyMap<string, string> = new Map(Object.entries({
  // video
  mp4: "video/mp4",
  m4v: "video/mp4",
  mkv: "video/x-matroska",
  webm: "video/webm",
  avi: "video/x-msvideo",
  mov: "video/quicktime",
  wmv: "video/x-ms-wmv",
  flv: "video/x-flv",
  ts: "video/mp2t",
  m2ts: "video/mp2t",
  mpg: "video/mpeg",
  mpeg: "video/mpeg",
  ogv: "video/ogg",
  "3gp": "video/3gpp",
  // audio
  mp3: "audio/mpeg",
  m4a: "audio/mp4",
  m4b: "audio/mp4",
  aac: "audio/aac",
  flac: "audio/flac",
  ogg: "audio/ogg",
  oga: "audio/ogg",
  opus: "audio/ogg",
  wav: "audio/wav",
  wma: "audio/x-ms-wma",
  mka: "audio/x-matroska",
  // subtitles and text (inert)
  srt: "application/x-subrip",
  vtt: "text/vtt; charset=utf-8",
  ass: "text/plain; charset=utf-8",
  txt: "text/plain; charset=utf-8",
  nfo: "text/plain; charset=utf-8",
  md: "text/plain; charset=utf-8",
  log: "text/plain; charset=utf-8",
  cue: "text/plain; charset=utf-8",
  // images
  jpg: "image/jpeg",
  jpeg: "image/jpeg",
  png: "image/png",
  gif: "image/gif",
  webp: "image/webp",
  bmp: "image/bmp",
  // documents and archives
  pdf: "application/pdf",
  epub: "application/epub+zip",
  zip: "application/zip",
  gz: "application/gzip",
  tar: "application/x-tar",
  "7z": "application/x-7z-compressed",
  rar: "application/vnd.rar",
  json: "application/json",
  torrent: "application/x-bittorrent"
}))

export const fallback = "application/octet-stream"

/** The type for a path (its last component's extension, case-insensitive). */
export const contentTypeOf = (path: string): string => {
  const name = path.slice(path.lastIndexOf("/") + 1)
  const dot = name.lastIndexOf(".")
  if (dot <= 0 || dot === name.length - 1) return fallback
  return TYPES.get(name.slice(dot + 1).toLowerCase()) ?? fallback
}
