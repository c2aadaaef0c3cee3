/**
 * `effect-torrent info <file.torrent | magnet> [--json] [--fetch [--peer host:port]... [--timeout S] ...]`:
 * everything the metainfo says, as text or as one JSON object. A magnet link says little by itself; with `--fetch`
 * its metadata is fetched from peers (BEP 9: its `x.pe`, `--peer`, trackers, the DHT) and shown in full.
 */
import * as Args from "@effect/cli/Args"
import * as Command from "@effect/cli/Command"
import * as Options from "@effect/cli/Options"
import * as Console from "effect/Console"
import * as Effect from "effect/Effect"
import * as InfoHash from "../core/InfoHash.ts"
import type * as Magnet from "../metainfo/Magnet.ts"
import type * as Metainfo from "../metainfo/Metainfo.ts"
import { colorEnabled, formatBytes, formatDate, groupDigits, sanitizeText, style } from "./Output.ts"
import * as FetchOptions from "./FetchOptions.ts"
import * as Source from "./Source.ts"

/** The JSON shape of `info --json` (stable: scripts read it). */
export const torrentJson = (m: Metainfo.Metainfo) => ({
  source: "torrent" as const,
  version: m.version,
  name: m.name,
  infoHash: InfoHash.toHex(m.infoHash),
  infoHashV2: m.infoHashV2 === undefined ? null : InfoHash.toHex(m.infoHashV2),
  totalSize: m.totalLength,
  pieceLength: m.pieceLength,
  pieceCount: m.pieceCount,
  private: m.private,
  files: m.files.map((f) => ({
    path: f.path.join("/"),
    size: f.length,
    ...(f.pad ? { pad: true } : {}),
    ...(f.attributes.executable ? { executable: true } : {}),
    ...(f.attributes.hidden ? { hidden: true } : {}),
    ...(f.attributes.symlink !== undefined ? { symlink: f.attributes.symlink.join("/") } : {})
  })),
  trackers: m.trackers,
  webSeeds: m.webSeeds,
  httpSeeds: m.httpSeeds,
  comment: m.comment ?? null,
  createdBy: m.createdBy ?? null,
  creationDate: m.creationDate === undefined ? null : (formatDate(m.creationDate) ?? m.creationDate)
})

export const magnetJson = (m: Magnet.Magnet) => ({
  source: "magnet" as const,
  name: m.name ?? null,
  infoHash: m.infoHashes.v1 === undefined ? null : InfoHash.toHex(m.infoHashes.v1),
  infoHashV2: m.infoHashes.v2 === undefined ? null : InfoHash.toHex(m.infoHashes.v2),
  totalSize: m.exactLength ?? null,
  trackers: m.trackers.map((t) => [t]),
  webSeeds: m.webSeeds,
  peers: m.peers.map((p) => (p.host.includes(":") ? `[${p.host}]:${p.port}` : `${p.host}:${p.port}`)),
  selectOnly: m.selectOnly === undefined ? null : m.selectOnly.map((r) => (r.first === r.last ? r.first : [r.first, r.last]))
})

const torrentText = (m: Metainfo.Metainfo, color: boolean): string => {
  const s = style(color)
  const t = sanitizeText
  const lines: Array<string> = []
  const field = (label: string, value: string) => lines.push(`${s.bold(label.padEnd(13))} ${value}`)
  field("name", t(m.name))
  if (m.version !== "v2") {
    field("info-hash", s.cyan(InfoHash.toHex(m.infoHash)) + (m.version === "hybrid" ? s.dim("  (v1)") : ""))
  }
  if (m.infoHashV2 !== undefined) {
    field("info-hash v2", s.cyan(InfoHash.toHex(m.infoHashV2)) + s.dim(m.version === "v2" ? "  (v2 only)" : "  (hybrid v1/v2)"))
  }
  field("size", `${groupDigits(m.totalLength)} bytes (${formatBytes(m.totalLength)})`)
  field("pieces", `${groupDigits(m.pieceCount)} × ${formatBytes(m.pieceLength)}`)
  field("private", m.private ? s.yellow("yes") : "no")
  if (m.creationDate !== undefined) field("created", formatDate(m.creationDate) ?? String(m.creationDate))
  if (m.createdBy !== undefined) field("created by", t(m.createdBy))
  if (m.comment !== undefined) field("comment", t(m.comment).replace(/\n/g, " "))
  if (m.trackers.length === 0) field("trackers", s.dim("none (trackerless)"))
  else {
    lines.push(s.bold("trackers"))
    m.trackers.forEach((tier, i) => tier.forEach((url) => lines.push(`  ${s.dim(`tier ${i}`)}  ${t(url)}`)))
  }
  if (m.webSeeds.length > 0) {
    lines.push(s.bold("web seeds"))
    for (const u of m.webSeeds) lines.push(`  ${t(u)}`)
  }
  if (m.httpSeeds.length > 0) {
    lines.push(s.bold("http seeds"))
    for (const u of m.httpSeeds) lines.push(`  ${t(u)}`)
  }
  const real = m.files.filter((f) => !f.pad)
  const pads = m.files.length - real.length
  lines.push(s.bold(`files (${real.length}${pads > 0 ? ` + ${pads} pad` : ""}; numbered for --only)`))
  const width = Math.max(...real.map((f) => formatBytes(f.length).length), 1)
  const numbers = String(Math.max(0, real.length - 1)).length
  real.forEach((f, n) => {
    const flags = [
      f.attributes.executable ? "x" : "",
      f.attributes.hidden ? "h" : "",
      f.attributes.symlink !== undefined ? `-> ${f.attributes.symlink.join("/")}` : ""
    ].filter((x) => x !== "")
    const number = s.dim(String(n).padStart(numbers))
    lines.push(`  ${number}  ${formatBytes(f.length).padStart(width)}  ${t(f.path.join("/"))}${flags.length ? s.dim(`  ${flags.join(" ")}`) : ""}`)
  })
  return lines.join("\n")
}

const magnetText = (m: Magnet.Magnet, color: boolean): string => {
  const s = style(color)
  const t = sanitizeText
  const lines: Array<string> = []
  const field = (label: string, value: string) => lines.push(`${s.bold(label.padEnd(13))} ${value}`)
  field("name", m.name === undefined ? s.dim("(not given)") : t(m.name))
  if (m.infoHashes.v1 !== undefined) field("info-hash", s.cyan(InfoHash.toHex(m.infoHashes.v1)))
  if (m.infoHashes.v2 !== undefined) field("info-hash v2", s.cyan(InfoHash.toHex(m.infoHashes.v2)))
  if (m.exactLength !== undefined) field("size", `${groupDigits(m.exactLength)} bytes (${formatBytes(m.exactLength)})`)
  lines.push(s.dim("(a magnet link: files and pieces come from peers, BEP 9)"))
  if (m.trackers.length > 0) {
    lines.push(s.bold("trackers"))
    for (const u of m.trackers) lines.push(`  ${t(u)}`)
  }
  if (m.peers.length > 0) {
    lines.push(s.bold("peers"))
    for (const p of magnetJson(m).peers) lines.push(`  ${t(p)}`)
  }
  if (m.webSeeds.length > 0) {
    lines.push(s.bold("web seeds"))
    for (const u of m.webSeeds) lines.push(`  ${t(u)}`)
  }
  if (m.selectOnly !== undefined) {
    field("select only", m.selectOnly.map((r) => (r.first === r.last ? `${r.first}` : `${r.first}-${r.last}`)).join(","))
  }
  return lines.join("\n")
}

const torrentArg = Args.text({ name: "torrent | magnet" }).pipe(
  Args.withDescription("a .torrent file or a magnet: URI")
)
const jsonOpt = Options.boolean("json").pipe(Options.withDescription("print one JSON object instead of text"))
const fetchOpt = Options.boolean("fetch").pipe(
  Options.withDescription("for a magnet link: fetch its metadata from peers and show everything")
)

export const info = Command.make("info", { source: torrentArg, json: jsonOpt, fetch: fetchOpt, ...FetchOptions.fetchOptions }, (input) =>
  Effect.gen(function* () {
    const { json, source } = input
    const loaded = yield* Source.load(source)
    const color = colorEnabled(process.stdout)
    if (input.fetch && loaded._tag === "Magnet") {
      // Loaded only here: reading a .torrent needs none of the peer code.
      const Fetch = yield* Effect.promise(() => import("./Fetch.ts"))
      const fetched = yield* Fetch.fetch(loaded.magnet, input)
      return yield* Console.log(
        json ? JSON.stringify(torrentJson(fetched.metainfo), null, 2) : torrentText(fetched.metainfo, color)
      )
    }
    if (json) {
      const obj = loaded._tag === "Torrent" ? torrentJson(loaded.metainfo) : magnetJson(loaded.magnet)
      return yield* Console.log(JSON.stringify(obj, null, 2))
    }
    yield* Console.log(loaded._tag === "Torrent" ? torrentText(loaded.metainfo, color) : magnetText(loaded.magnet, color))
  })
).pipe(Command.withDescription("show what a .torrent file or magnet link describes"))
