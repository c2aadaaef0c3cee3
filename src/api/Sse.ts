/**
 * Server-Sent Events (the WHATWG `text/event-stream` format), both ends: the frames `GET /api/events` writes and a
 * parser for the client side (RemoteClient.events).
 *
 * Frames: `event: <name>\ndata: <one line>\n\n` per event (the data is JSON, which never holds a raw newline), and
 * `: <comment>\n\n` lines that keep idle connections (and the proxies between) alive. The parser follows the spec's
 * rules for the fields this API uses: lines end with LF, CRLF or CR; `event`, `data` (several data lines are joined
 * with LF) and `id` are kept; comments and unknown fields are skipped; an event is dispatched at a blank line and
 * only if it has data.
 */
import * as Chunk from "effect/Chunk"
import * as Stream from "effect/Stream"

/** One event: `data` must not contain a line break. */
export const frame = (event: string, data: string): string => `event: ${event}\ndata: ${data}\n\n`

export const comment = (text: string): string => `: ${text}\n\n`

export interface Event {
  /** "message" when the frame has no `event:` field. */
  readonly event: string
  readonly data: string
  readonly id: string | undefined
}

/** An incremental parser: feed it text as it arrives, it returns the events completed so far. */
export const makeParser = () => {
  let buffer = ""
  let event = ""
  let data: Array<string> = []
  let id: string | undefined = undefined
  let lastId: string | undefined = undefined
  let skipLf = false
  const line = (text: string, out: Array<Event>) => {
    if (text === "") {
      if (data.length > 0) out.push({ event: event === "" ? "message" : event, data: data.join("\n"), id: lastId })
      event = ""
      data = []
      return
    }
    if (text.startsWith(":")) return
    const colon = text.indexOf(":")
    const field = colon < 0 ? text : text.slice(0, colon)
    let value = colon < 0 ? "" : text.slice(colon + 1)
    if (value.startsWith(" ")) value = value.slice(1)
    if (field === "event") event = value
    else if (field === "data") data.push(value)
    else if (field === "id" && !value.includes("\0")) {
      id = value
      lastId = id
    }
  }
  return (text: string): Array<Event> => {
    const out: Array<Event> = []
    let start = 0
    buffer += text
    for (let i = 0; i < buffer.length; i++) {
      const c = buffer.charCodeAt(i)
      if (skipLf) {
        skipLf = false
        if (c === 10) {
          start = i + 1
          continue
        }
      }
      if (c === 10 || c === 13) {
        line(buffer.slice(start, i), out)
        start = i + 1
        if (c === 13) skipLf = true
      }
    }
    buffer = buffer.slice(start)
    return out
  }
}

/** Text chunks to events. */
export const parse = <E, R>(text: Stream.Stream<string, E, R>): Stream.Stream<Event, E, R> =>
  Stream.suspend(() => {
    const feed = makeParser()
    return Stream.mapChunks(text, (chunk) => Chunk.unsafeFromArray(Chunk.toReadonlyArray(chunk).flatMap(feed)))
  })

/** Bytes (UTF-8) to events. */
export const parseBytes = <E, R>(bytes: Stream.Stream<Uint8Array, E, R>): Stream.Stream<Event, E, R> =>
  parse(Stream.decodeText(bytes))

/** The events of a complete text. */
export const parseText = (text: string): ReadonlyArray<Event> => makeParser()(text)
