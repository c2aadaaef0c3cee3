/**
 * The details of one torrent: facts, then four tabs: files (wanted, priority, a link that streams the file),
 * peers (address, client, rates, flags, encryption), trackers (last and next announce, counts, the error) and the
 * pieces as a bar. It refreshes when the event stream says something about this torrent, at most every 1.5 s
 * (peers and trackers only for their open tab); PieceVerified events fill the bar in between.
 */
import * as Bitfield from "./Bitfield.ts"
import * as Client from "./Client.ts"
import { byId, cssVar, fitCanvas, h, text } from "./Dom.ts"
import * as Format from "./Format.ts"
import type { Detail, PeerInfo, Priority, SessionEvent, Summary, TrackerInfo } from "./Wire.ts"

export type Tab = "files" | "peers" | "trackers" | "pieces"
export const tabs: ReadonlyArray<Tab> = ["files", "peers", "trackers", "pieces"]

const REFRESH_MS = 1500

/**
 * Transmission's peer flags: D/d download (unchoked/choked), U/u upload, K unchoked not interested, ?, E encrypted,
 * H from the DHT or X from PEX, I incoming, T uTP.
 */
export const peerFlags = (p: PeerInfo): string => {
  let f = ""
  if (p.interested) f += p.chokingUs ? "d" : "D"
  else if (!p.chokingUs) f += "K"
  if (p.interestedInUs) f += p.choked ? "u" : "U"
  else if (!p.choked) f += "?"
  if (p.encryption === "rc4") f += "E"
  if (p.source === "dht") f += "H"
  else if (p.source === "pex") f += "X"
  if (p.incoming) f += "I"
  if (p.transport === "utp") f += "T"
  return f
}

const sourceLabel: { readonly [K in PeerInfo["source"]]: string } = {
  tracker: "tracker",
  dht: "DHT",
  pex: "PEX",
  lsd: "local (LSD)",
  manual: "given",
  incoming: "incoming",
  webseed: "web seed"
}

const encryptionLabel = (e: PeerInfo["encryption"]) => (e === "rc4" ? "yes (RC4)" : e === "plaintext" ? "no (MSE, plaintext)" : "no")

/** A table; each cell also carries its column's name (`data-label`), which a phone shows beside it (cards). */
const table = (head: ReadonlyArray<string>, rows: ReadonlyArray<HTMLTableRowElement>, cls: string) => {
  for (const row of rows) [...row.cells].forEach((cell, i) => cell.setAttribute("data-label", head[i] ?? ""))
  return h("table", { class: cls }, h("thead", {}, h("tr", {}, ...head.map((c) => h("th", {}, c)))), h("tbody", {}, ...rows))
}

export interface Handlers {
  readonly notify: (message: string, error?: boolean) => void
  readonly close: () => void
  /** What the list knows of a torrent: the facts shown at once, before the details arrive (no layout shift). */
  readonly summary: (id: number) => Summary | undefined
}

export const make = (handlers: Handlers) => {
  const section = byId<HTMLElement>("detail")
  const nameEl = byId("detail-name")
  const facts = byId("detail-summary")
  const panels: Record<Tab, HTMLElement> = {
    files: byId("panel-files"),
    peers: byId("panel-peers"),
    trackers: byId("panel-trackers"),
    pieces: byId("panel-pieces")
  }
  const piecesCanvas = byId<HTMLCanvasElement>("pieces")
  const piecesText = byId("pieces-text")

  let current: number | undefined
  let tab: Tab = "files"
  let detail: Detail | undefined
  let bits: Uint8Array = new Uint8Array(0)
  let timer: ReturnType<typeof setTimeout> | undefined
  let loading = false
  let generation = 0

  const fact = (dt: string, dd: string, cls?: string) => [h("dt", {}, dt), h("dd", cls === undefined ? {} : { class: cls }, dd)]

  const renderFacts = (d: Summary) => {
    text(nameEl, d.name)
    facts.replaceChildren(
      ...fact("State", Format.stateLabel[d.state] ?? d.state),
      ...fact("Progress", `${Format.percent(d.progress)} of ${Format.bytes(d.wantedSize)}`),
      ...fact("Size", Format.bytes(d.size)),
      ...fact("Rates", `↓ ${Format.rate(d.downloadRate)}  ↑ ${Format.rate(d.uploadRate)}`),
      ...fact("Ratio", Format.ratio(d.ratio)),
      ...fact("ETA", d.complete ? "–" : Format.duration(d.eta)),
      ...fact("Info-hash", d.infoHash, "mono"),
      ...fact("Saved in", d.downloadDir, "mono"),
      ...(d.error === null ? [] : fact("Error", `${d.error.reason}: ${d.error.message}`, "error"))
    )
  }

  const renderFiles = (d: Detail) => {
    const rows = d.files.map((f) => {
      const wanted = h("input", { type: "checkbox", class: "f-wanted", "aria-label": `download ${f.path}`, checked: f.wanted })
      wanted.addEventListener("change", () => {
        const changes = wanted.checked ? { wanted: [f.index] } : { unwanted: [f.index] }
        Client.setFiles(d.infoHash, changes).then(() => schedule(0), (e: Error) => {
          wanted.checked = !wanted.checked
          handlers.notify(e.message, true)
        })
      })
      const priority = h("select", { class: "f-priority", "aria-label": `priority of ${f.path}` },
        ...(["high", "normal", "low"] as const).map((p) => h("option", { value: p, selected: p === f.priority }, p)))
      priority.addEventListener("change", () => {
        const p = priority.value as Priority
        const changes = p === "high" ? { priorityHigh: [f.index] } : p === "low" ? { priorityLow: [f.index] } : { priorityNormal: [f.index] }
        Client.setFiles(d.infoHash, changes).then(() => schedule(0), (e: Error) => handlers.notify(e.message, true))
      })
      const link = h("a", { class: "f-open", href: Client.fileUrl(d.infoHash, f.index), target: "_blank", rel: "noopener" }, "Open")
      const progress = f.length === 0 ? 1 : f.completed / f.length
      return h("tr", { "data-index": f.index },
        h("td", {}, wanted),
        h("td", { class: "f-path" }, f.path),
        h("td", { class: "num" }, Format.bytes(f.length)),
        h("td", { class: "num f-progress" }, Format.percent(progress)),
        h("td", {}, priority),
        h("td", {}, link))
    })
    panels.files.replaceChildren(table(["Download", "File", "Size", "Done", "Priority", "Stream"], rows, "files"))
  }

  const renderPeers = (peers: ReadonlyArray<PeerInfo>) => {
    if (peers.length === 0) {
      panels.peers.replaceChildren(h("p", { class: "hint" }, "No peers connected."))
      return
    }
    const rows = peers.map((p) =>
      h("tr", { "data-address": p.address },
        // Under the address, how we reach it and where it came from (every source in the tooltip).
        h("td", { class: "p-address" },
          h("span", { class: "mono" }, p.address),
          h("small", { class: "p-route", title: `sources: ${p.sources.map((s) => sourceLabel[s]).join(", ")}` },
            h("span", { class: "p-transport" }, p.transport === "utp" ? "uTP" : "TCP"),
            " · ",
            h("span", { class: "p-source" }, sourceLabel[p.source]))),
        h("td", { class: "p-client" }, p.client === "" ? "?" : p.client),
        h("td", { class: "num" }, Format.rate(p.downloadRate)),
        h("td", { class: "num" }, Format.rate(p.uploadRate)),
        h("td", { class: "num" }, Format.percent(p.progress)),
        h("td", { class: "mono p-flags" }, peerFlags(p)),
        h("td", { class: "p-encrypted" }, encryptionLabel(p.encryption))))
    panels.peers.replaceChildren(table(["Address", "Client", "Down", "Up", "Has", "Flags", "Encrypted"], rows, "peers"))
  }

  const renderTrackers = (trackers: ReadonlyArray<TrackerInfo>) => {
    if (trackers.length === 0) {
      panels.trackers.replaceChildren(h("p", { class: "hint" }, "No trackers (DHT, PEX and magnet peers only)."))
      return
    }
    const now = Date.now()
    const n = (v: number | null) => (v === null ? "–" : String(v))
    const rows = trackers.map((t) =>
      h("tr", { "data-url": t.url, "data-status": t.status },
        h("td", { class: "mono t-url" }, t.url),
        h("td", { class: "num" }, String(t.tier)),
        h("td", { class: "tr-status" }, t.status),
        h("td", { class: "tr-last" }, Format.relative(t.lastAnnounceAt, now)),
        h("td", {}, Format.relative(t.nextAnnounceAt, now)),
        h("td", { class: "num" }, `${n(t.seeders)} / ${n(t.leechers)}`),
        h("td", { class: t.status === "error" ? "error tr-message" : "tr-message" }, t.message)))
    panels.trackers.replaceChildren(table(["URL", "Tier", "Status", "Last announce", "Next", "Seeds / leechers", "Message"], rows, "trackers"))
  }

  const renderPieces = () => {
    if (detail === undefined) return
    const have = Bitfield.count(bits, detail.pieces)
    piecesCanvas.dataset["have"] = String(have)
    piecesCanvas.dataset["pieces"] = String(detail.pieces)
    text(piecesText, `${have} of ${detail.pieces} pieces of ${Format.bytes(detail.pieceLength)}`)
    if (panels.pieces.hidden) return
    const ctx = fitCanvas(piecesCanvas)
    if (ctx === null) return
    const w = piecesCanvas.width
    const cols = Bitfield.columns(bits, detail.pieces, w)
    ctx.fillStyle = cssVar("--bar-empty")
    ctx.fillRect(0, 0, w, piecesCanvas.height)
    ctx.fillStyle = cssVar("--accent")
    for (let x = 0; x < w; x++) {
      const v = cols[x]!
      if (v === 0) continue
      ctx.globalAlpha = 0.35 + 0.65 * v
      ctx.fillRect(x, 0, 1, piecesCanvas.height)
    }
    ctx.globalAlpha = 1
  }

  const load = async () => {
    if (current === undefined || loading) return
    loading = true
    const id = current
    const gen = generation
    try {
      const d = await Client.detail(id)
      if (gen !== generation) return
      detail = d
      bits = Bitfield.decode(d.bitfield)
      renderFacts(d)
      if (tab === "files") renderFiles(d)
      if (tab === "pieces") renderPieces()
      if (tab === "peers") renderPeers(await Client.peers(id))
      if (tab === "trackers") renderTrackers(await Client.trackers(id))
    } catch (e) {
      if (gen !== generation) return
      if (e instanceof Client.ApiFailure && e.reason === "not-found") handlers.close()
      else handlers.notify(e instanceof Error ? e.message : String(e), true)
    } finally {
      loading = false
    }
  }

  /** A refresh within `ms` (or sooner if one is already due). */
  const schedule = (ms = REFRESH_MS) => {
    if (timer !== undefined) {
      if (ms > 0) return
      clearTimeout(timer)
    }
    timer = setTimeout(() => {
      timer = undefined
      void load()
    }, ms)
  }

  const showTab = (t: Tab) => {
    tab = t
    for (const name of tabs) {
      panels[name].hidden = name !== t
      const button = byId(`tab-${name}`)
      button.setAttribute("aria-selected", String(name === t))
      button.classList.toggle("active", name === t)
    }
    if (t === "pieces") renderPieces()
    schedule(0)
  }

  const open = (id: number) => {
    if (current !== id) {
      generation++
      detail = undefined
      bits = new Uint8Array(0)
      const known = handlers.summary(id)
      if (known === undefined) {
        text(nameEl, "")
        facts.replaceChildren()
      } else renderFacts(known)
      for (const p of [panels.files, panels.peers, panels.trackers]) p.replaceChildren()
    }
    current = id
    section.hidden = false
    document.body.classList.add("with-detail")
    showTab(tab)
  }

  const close = () => {
    generation++
    current = undefined
    section.hidden = true
    document.body.classList.remove("with-detail")
    if (timer !== undefined) clearTimeout(timer)
    timer = undefined
  }

  /** Whatever the event stream says about the open torrent. */
  const onEvent = (event: SessionEvent) => {
    if (current === undefined) return
    const id = "torrent" in event ? event.torrent.id : "id" in event ? event.id : undefined
    if (id !== current) return
    if (event._tag === "Removed") return handlers.close()
    if (event._tag === "PieceVerified" && detail !== undefined) {
      Bitfield.set(bits, event.index)
      if (tab === "pieces") renderPieces()
    }
    schedule()
  }

  const action = (id: string, run: (ref: number) => Promise<void>, said: string) =>
    byId(id).addEventListener("click", () => {
      const ref = current
      if (ref === undefined) return
      const name = nameEl.textContent ?? ""
      run(ref).then(() => {
        handlers.notify(`${said} ${name}`)
        schedule(0)
      }, (e: Error) => handlers.notify(e.message, true))
    })
  action("detail-verify", Client.verify, "Verifying")
  action("detail-reannounce", Client.reannounce, "Announced")

  for (const name of tabs) byId(`tab-${name}`).addEventListener("click", () => showTab(name))
  byId("detail-close").addEventListener("click", () => handlers.close())
  window.addEventListener("resize", () => renderPieces())

  return { open, close, onEvent, showTab, isOpen: () => current !== undefined, current: () => current }
}
