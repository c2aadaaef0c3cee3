/**
 * The web UI's pure parts, under Node: number formatting, the pieces bar's arithmetic over a base64 bitfield, and
 * the list's state as a fold of the event stream (what a Progress event derives: verified bytes and ETA).
 */
import { describe, expect, it } from "@effect/vitest"
import { FastCheck as fc } from "effect"
import * as Bitfield from "../../src/webui/Bitfield.ts"
import * as Filter from "../../src/webui/Filter.ts"
import * as Format from "../../src/webui/Format.ts"
import * as Store from "../../src/webui/Store.ts"
import type { Summary } from "../../src/webui/Wire.ts"

describe("Format", () => {
  it("bytes and rates in binary units, three significant digits", () => {
    expect([0, 1023, 1024, 1536, 10 * 1024 * 1024 + 1, 123.4 * 1024 ** 3].map(Format.bytes)).toEqual([
      "0 B", "1023 B", "1.00 KiB", "1.50 KiB", "10.0 MiB", "123 GiB"
    ])
    expect([Format.rate(0), Format.rate(2048), Format.bytes(-1), Format.bytes(Number.NaN)]).toEqual(["0 B/s", "2.00 KiB/s", "–", "–"])
  })

  it("percent never says 100 % before it is complete", () => {
    expect([0, 0.4567, 0.9999, 1, 1.2, -1].map(Format.percent)).toEqual(["0.0 %", "45.6 %", "99.9 %", "100.0 %", "100.0 %", "0.0 %"])
  })

  it("durations in their two largest units; unknown is ∞; times relative to now", () => {
    expect([null, -1, 0, 59.4, 60, 200, 3600, 7500, 86400, 3 * 86400 + 4 * 3600 + 59].map(Format.duration)).toEqual([
      "∞", "∞", "0 s", "59 s", "1 min", "3 min 20 s", "1 h", "2 h 5 min", "1 d", "3 d 4 h"
    ])
    expect([Format.relative(null, 0), Format.relative(1000, 13_000), Format.relative(190_000, 10_000), Format.relative(500, 0)])
      .toEqual(["never", "12 s ago", "in 3 min", "now"])
    expect([Format.eta(100, 10), Format.eta(0, 10), Format.eta(100, 0)]).toEqual([10, null, null])
  })
})

const base64 = (bytes: Uint8Array) => Buffer.from(bytes).toString("base64")

describe("Bitfield", () => {
  it.prop("decode, has and count agree with the bits; set sets one", [fc.uint8Array({ maxLength: 64 })], ([bytes]) => {
    const bits = Bitfield.decode(base64(bytes))
    expect([...bits]).toEqual([...bytes])
    const pieces = bytes.length * 8
    let n = 0
    for (let i = 0; i < pieces; i++) if ((bytes[i >> 3]! >> (7 - (i & 7))) & 1) n++
    expect(Bitfield.count(bits, pieces)).toBe(n)
    if (pieces > 0) {
      Bitfield.set(bits, pieces - 1)
      expect(Bitfield.has(bits, pieces - 1)).toBe(true)
    }
  })

  it.prop(
    "columns: shares in [0, 1]; all 1 for a full bitfield, all 0 for an empty one; one piece per column when they fit",
    [fc.integer({ min: 1, max: 500 }), fc.integer({ min: 1, max: 300 }), fc.double({ min: 0, max: 1, noNaN: true })],
    ([pieces, width, density]) => {
      const bytes = new Uint8Array(Math.ceil(pieces / 8))
      for (let i = 0; i < pieces; i++) if ((i * 0.618 + density) % 1 < density) Bitfield.set(bytes, i)
      const cols = Bitfield.columns(bytes, pieces, width)
      expect(cols.length).toBe(width)
      for (const v of cols) expect(v >= 0 && v <= 1).toBe(true)
      const full = new Uint8Array(bytes.length).fill(255)
      expect([...Bitfield.columns(full, pieces, width)].every((v) => v === 1)).toBe(true)
      expect([...Bitfield.columns(new Uint8Array(bytes.length), pieces, width)].every((v) => v === 0)).toBe(true)
      // with at least as many columns as pieces, a column shows exactly its one piece
      if (width >= pieces) {
        for (let c = 0; c < width; c++) expect(cols[c]).toBe(Bitfield.has(bytes, Math.floor((c * pieces) / width)) ? 1 : 0)
      }
    }
  )
})

const summary = (id: number, over: Partial<Summary> = {}): Summary => ({
  id,
  infoHash: id.toString(16).padStart(40, "0"),
  name: `t${id}`,
  state: "downloading",
  complete: false,
  progress: 0,
  size: 1000,
  wantedSize: 800,
  haveSize: 0,
  downloaded: 0,
  uploaded: 0,
  downloadRate: 0,
  uploadRate: 0,
  peers: 0,
  ratio: 0,
  eta: null,
  error: null,
  downloadDir: "/d",
  addedAt: 0,
  completedAt: null,
  queuePosition: 0,
  private: false,
  magnet: "magnet:?",
  ...over
})

describe("Store", () => {
  it("folds the event stream: added, progress (verified bytes and ETA derived), completed, changed, removed", () => {
    const store = Store.make()
    expect(Store.reset(store, [summary(2), summary(1)])).toEqual([])
    expect(Store.ordered(store).map((t) => t.id)).toEqual([1, 2])
    expect(Store.apply(store, { _tag: "Added", torrent: summary(3) })).toEqual({ _tag: "Upsert", id: 3 })
    const hash = summary(1).infoHash
    expect(Store.apply(store, { _tag: "Progress", id: 1, infoHash: hash, progress: 0.25, downloadRate: 100, uploadRate: 7, peers: 2 }))
      .toEqual({ _tag: "Upsert", id: 1 })
    expect(store.torrents.get(1)).toMatchObject({ progress: 0.25, haveSize: 200, downloadRate: 100, uploadRate: 7, peers: 2, eta: 6 })
    expect(Store.totals(store)).toEqual({ down: 100, up: 7 })
    expect(Store.apply(store, { _tag: "Progress", id: 9, infoHash: hash, progress: 1, downloadRate: 0, uploadRate: 0, peers: 0 }))
      .toEqual({ _tag: "None" })
    expect(Store.apply(store, { _tag: "PieceVerified", id: 1, infoHash: hash, index: 3 })).toEqual({ _tag: "None" })
    Store.apply(store, { _tag: "Completed", id: 1, infoHash: hash })
    expect(store.torrents.get(1)).toMatchObject({ complete: true, progress: 1, haveSize: 800, eta: null })
    Store.apply(store, { _tag: "Changed", torrent: summary(1, { state: "seeding", complete: true, progress: 1 }) })
    expect(store.torrents.get(1)?.state).toBe("seeding")
    expect(Store.apply(store, { _tag: "Removed", id: 2, infoHash: summary(2).infoHash })).toEqual({ _tag: "Remove", id: 2 })
    expect(Store.apply(store, { _tag: "Removed", id: 2, infoHash: summary(2).infoHash })).toEqual({ _tag: "None" })
    expect(Store.reset(store, [summary(3)])).toEqual([1])
  })
})

describe("Filter", () => {
  it("by a name part in any case, and by groups of states", () => {
    const torrents = [
      summary(1, { name: "Album", state: "downloading" }),
      summary(2, { name: "movie.bin", state: "seeding", uploadRate: 5 }),
      summary(3, { name: "idle seed", state: "seeding" }),
      summary(4, { name: "magnet", state: "fetching-metadata" }),
      summary(5, { name: "stopped", state: "paused" }),
      summary(6, { name: "done", state: "finished" }),
      summary(7, { name: "broken", state: "error" })
    ]
    const shown = (f: Filter.Filter) => torrents.filter((t) => Filter.matches(t, f)).map((t) => t.id)
    expect(shown({ text: "", state: "" })).toEqual([1, 2, 3, 4, 5, 6, 7])
    expect(shown({ text: "ALB", state: "" })).toEqual([1])
    expect(shown({ text: "", state: "active" })).toEqual([1, 2, 4])
    expect(shown({ text: "", state: "downloading" })).toEqual([1, 4])
    expect(shown({ text: "", state: "seeding" })).toEqual([2, 3])
    expect(shown({ text: "", state: "stopped" })).toEqual([5, 6])
    expect(shown({ text: "", state: "error" })).toEqual([7])
    expect(shown({ text: "e", state: "seeding" })).toEqual([2, 3])
  })
})
