/**
 * BEP 19 web seed URLs: which URL serves which file of a torrent.
 *
 * - Single-file torrent: the URL is the file; a URL ending in `/` gets the file's name appended.
 * - Multi-file torrent: the URL is a directory; file `f` is at `url/` + its raw path (the torrent's name first, as
 *   `Metainfo.FileEntry.rawPath` holds it), each component percent-encoded.
 * - Only `http:` and `https:` URLs are usable; anything else is refused with a typed error.
 *
 * Components use the torrent's raw names (a web server holds the files under the names the torrent gives, not our
 * sanitized ones). Encoding keeps RFC 3986 unreserved characters and escapes every other UTF-8 byte, and a
 * component made only of dots (`.`, `..`) is escaped too so that no URL normalisation climbs out of the directory.
 */
import * as Data from "effect/Data"
import * as Either from "effect/Either"
import * as Bytes from "../core/Bytes.ts"

export class WebSeedUrlError extends Data.TaggedError("WebSeedUrlError")<{
  readonly reason: "invalid-url" | "unsupported-scheme"
  readonly url: string
}> {
  override get message(): string {
    return this.reason === "invalid-url" ? `not a URL: ${this.url}` : `not an http(s) URL: ${this.url}`
  }
}

/** The parts of a torrent the mapping needs (a `Metainfo` has them). */
export interface Layout {
  readonly isMultiFile: boolean
  readonly files: ReadonlyArray<{ readonly rawPath: ReadonlyArray<string> }>
}

const UNRESERVED = /^[A-Za-z0-9\-._~]$/

/** Percent-encodes one path component (UTF-8; lone surrogates become U+FFFD, as `TextEncoder` does). */
export const encodeComponent = (component: string): string => {
  let out = ""
  const onlyDots = /^\.+$/.test(component)
  for (const b of Bytes.encodeUtf8(component)) {
    const c = String.fromCharCode(b)
    out += b < 0x80 && UNRESERVED.test(c) && !(onlyDots && c === ".")
      ? c
      : `%${b.toString(16).toUpperCase().padStart(2, "0")}`
  }
  return out
}

/** The base URL checked: `http:` or `https:`. */
export const parseBase = (url: string): Either.Either<URL, WebSeedUrlError> => {
  let u: URL
  try {
    u = new URL(url)
  } catch {
    return Either.left(new WebSeedUrlError({ reason: "invalid-url", url }))
  }
  return u.protocol === "http:" || u.protocol === "https:"
    ? Either.right(u)
    : Either.left(new WebSeedUrlError({ reason: "unsupported-scheme", url }))
}

/** The URL of file `file` on the web seed `base` (already checked by {@link parseBase}). */
export const fileUrl = (base: string, layout: Layout, file: number): string => {
  const raw = layout.files[file]!.rawPath
  if (!layout.isMultiFile) {
    return base.endsWith("/") ? base + encodeComponent(raw[raw.length - 1] ?? "") : base
  }
  return (base.endsWith("/") ? base : base + "/") + raw.map(encodeComponent).join("/")
}
