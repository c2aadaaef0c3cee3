/**
 * The byte arithmetic of a web seed (BEP 19), pure: blocks the picker handed out → contiguous runs of torrent
 * bytes → one HTTP range per file segment (a run crossing files needs one request per file; pad files are zeros,
 * never fetched) → whether a response answers the range asked.
 *
 * Accepted answers: `206` whose `Content-Range` is exactly the range asked (the total, when given, the file's
 * length) and whose `Content-Length`, when given, is the range's; or `200` with the whole file (`Content-Length`,
 * when given, the file's length), from which the range is cut (a server that ignores `Range`). Anything else with
 * a body of the wrong size is bad data; statuses that say "not now" are errors to back off from.
 */
import * as Either from "effect/Either"
import * as FileLayout from "../metainfo/FileLayout.ts"
import { WebSeedError } from "./WebSeedError.ts"

export interface Block {
  readonly index: number
  readonly begin: number
  readonly length: number
}

/** Contiguous torrent bytes `offset .. offset+length-1`, made of `blocks` in order. */
export interface Run {
  readonly offset: number
  readonly length: number
  readonly blocks: ReadonlyArray<Block>
}

/** One request's worth of a run: bytes of one file (`runOffset`: where they start in the run). */
export interface Segment {
  readonly file: number
  readonly fileOffset: number
  readonly length: number
  readonly runOffset: number
  /** A BEP 47 pad file: zeros, not fetched. */
  readonly pad: boolean
}

/** The blocks as runs of adjacent torrent bytes, in torrent order (duplicates kept once). */
export const runs = (blocks: ReadonlyArray<Block>, pieceLength: number): Array<Run> => {
  const sorted = blocks
    .map((b) => ({ b, at: b.index * pieceLength + b.begin }))
    .sort((x, y) => x.at - y.at)
  const out: Array<{ offset: number; length: number; blocks: Array<Block> }> = []
  for (const { at, b } of sorted) {
    const last = out[out.length - 1]
    if (last !== undefined && last.offset + last.length === at) {
      last.length += b.length
      last.blocks.push(b)
    } else if (last === undefined || last.offset + last.length < at) {
      out.push({ offset: at, length: b.length, blocks: [b] })
    }
  }
  return out
}

/** The file segments of a run, in order (contiguous in the run, none crossing a file end). */
export const segments = (layout: FileLayout.FileLayout, run: Pick<Run, "offset" | "length">): Array<Segment> =>
  FileLayout.extents(layout, run.offset, run.length).map((e) => ({
    file: e.file,
    fileOffset: e.fileOffset,
    length: e.length,
    runOffset: e.bufferOffset,
    pad: e.pad
  }))

/** The `Range` header of `length` bytes from `from`. */
export const rangeHeader = (from: number, length: number): string => `bytes=${from}-${from + length - 1}`

/** How the body maps to the range asked: it starts `skip` bytes before the range (0 for a 206). */
export interface Answer {
  readonly skip: number
}

export interface ResponseHead {
  readonly status: number
  readonly contentRange?: string | undefined
  readonly contentLength?: string | undefined
  readonly retryAfter?: string | undefined
}

const parseLength = (s: string | undefined): number | undefined =>
  s !== undefined && /^\d+$/.test(s.trim()) ? Number(s.trim()) : undefined

/** Seconds of a `Retry-After` given in seconds (an HTTP date is ignored). */
const parseRetryAfter = (s: string | undefined): number | undefined => parseLength(s)

/**
 * Whether a response head answers `length` bytes from `fileOffset` of a file of `fileLength` bytes. Redirects are
 * the caller's (they never get here).
 */
export const check = (
  url: string,
  head: ResponseHead,
  fileOffset: number,
  length: number,
  fileLength: number
): Either.Either<Answer, WebSeedError> => {
  const fail = (reason: WebSeedError["reason"], detail: string) =>
    Either.left(
      new WebSeedError({
        reason,
        url,
        detail,
        status: head.status,
        retryAfter: parseRetryAfter(head.retryAfter)
      })
    )
  const contentLength = parseLength(head.contentLength)
  if (head.status === 206) {
    const m = /^\s*bytes\s+(\d+)-(\d+)\/(\d+|\*)\s*$/i.exec(head.contentRange ?? "")
    if (m === null) return fail("bad-response", `206 with Content-Range "${head.contentRange ?? ""}"`)
    const first = Number(m[1])
    const last = Number(m[2])
    const total = m[3] === "*" ? undefined : Number(m[3])
    if (first !== fileOffset || last !== fileOffset + length - 1) {
      return fail("bad-response", `asked bytes ${fileOffset}-${fileOffset + length - 1}, got ${first}-${last}`)
    }
    if (total !== undefined && total !== fileLength) {
      return fail("bad-response", `the file is ${total} bytes there, ${fileLength} in the torrent`)
    }
    if (contentLength !== undefined && contentLength !== length) {
      return fail("bad-response", `206 of ${contentLength} bytes for a range of ${length}`)
    }
    return Either.right({ skip: 0 })
  }
  if (head.status === 200) {
    if (contentLength !== undefined && contentLength !== fileLength) {
      return fail("bad-response", `the file is ${contentLength} bytes there, ${fileLength} in the torrent`)
    }
    return Either.right({ skip: fileOffset })
  }
  if (head.status === 404 || head.status === 410) return fail("missing-file", `HTTP ${head.status}`)
  if (head.status === 416) return fail("bad-response", `HTTP 416: the file there is shorter than in the torrent`)
  return fail("http-status", `HTTP ${head.status}`)
}
