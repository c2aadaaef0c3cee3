/**
 * The torrent list: one row per torrent, built once and then updated in place field by field (a Progress event
 * touches a few texts and a width). Rows are buttons for people and keys: a click selects and opens the details;
 * each row has its own pause/resume and remove buttons.
 */
import { h, text } from "./Dom.ts"
import { type Filter, matches } from "./Filter.ts"
import * as Format from "./Format.ts"
import type { Summary } from "./Wire.ts"

interface Row {
  readonly li: HTMLLIElement
  readonly name: HTMLElement
  readonly state: HTMLElement
  readonly fill: HTMLElement
  readonly pct: HTMLElement
  readonly size: HTMLElement
  readonly down: HTMLElement
  readonly up: HTMLElement
  readonly eta: HTMLElement
  readonly peers: HTMLElement
  readonly error: HTMLElement
  readonly toggle: HTMLButtonElement
}

export interface Handlers {
  readonly select: (id: number, open: boolean) => void
  readonly toggle: (t: Summary) => void
  readonly remove: (t: Summary) => void
}

const stoppedStates = new Set(["paused", "finished", "error"])

/** Whether the torrent's button resumes it (else it pauses it). */
export const isStopped = (t: Summary): boolean => stoppedStates.has(t.state)

export const make = (ul: HTMLUListElement, handlers: Handlers) => {
  const rows = new Map<number, Row>()
  const byId = new Map<number, Summary>()
  let filter: Filter = { text: "", state: "" }
  let selected: number | undefined

  const build = (t: Summary): Row => {
    const cell = (cls: string) => h("span", { class: cls })
    const name = h("span", { class: "t-name" })
    const state = cell("t-state")
    const fill = h("span", { class: "t-fill" })
    const bar = h("span", { class: "t-bar", role: "progressbar", "aria-valuemin": 0, "aria-valuemax": 100 }, fill)
    const pct = cell("t-pct")
    const size = cell("t-size")
    const down = cell("t-down")
    const up = cell("t-up")
    const eta = cell("t-eta")
    const peers = cell("t-peers")
    const error = cell("t-error")
    const toggle = h("button", { type: "button", class: "t-toggle" })
    const remove = h("button", { type: "button", class: "t-remove", title: "Remove" }, "Remove")
    const li = h(
      "li",
      { class: "torrent", "data-id": t.id, "data-hash": t.infoHash, tabindex: -1 },
      h("span", { class: "t-title" }, name, state),
      h("span", { class: "t-progress" }, bar, pct),
      size,
      down,
      up,
      eta,
      peers,
      h("span", { class: "t-actions" }, toggle, remove),
      error
    )
    li.addEventListener("click", (e) => {
      if ((e.target as Element).closest("button") !== null) return
      handlers.select(t.id, true)
    })
    toggle.addEventListener("click", () => {
      const now = byId.get(t.id)
      if (now !== undefined) handlers.toggle(now)
    })
    remove.addEventListener("click", () => {
      const now = byId.get(t.id)
      if (now !== undefined) handlers.remove(now)
    })
    return { li, name, state, fill, pct, size, down, up, eta, peers, error, toggle }
  }

  const update = (row: Row, t: Summary) => {
    byId.set(t.id, t)
    text(row.name, t.name)
    row.name.title = t.name
    row.li.dataset["state"] = t.state
    text(row.state, Format.stateLabel[t.state] ?? t.state)
    // A magnet still fetching its metadata wants nothing yet (progress 1 by the API's definition): nothing to show.
    const known = t.state !== "fetching-metadata"
    const pct = known ? Math.min(100, Math.max(0, t.progress * 100)) : 0
    const width = `${pct.toFixed(1)}%`
    if (row.fill.style.width !== width) row.fill.style.width = width
    row.fill.parentElement!.setAttribute("aria-valuenow", pct.toFixed(1))
    text(row.pct, known ? Format.percent(t.progress) : "–")
    text(row.size, !known ? "" : t.complete ? Format.bytes(t.wantedSize) : `${Format.bytes(t.haveSize)} / ${Format.bytes(t.wantedSize)}`)
    text(row.down, `↓ ${Format.rate(t.downloadRate)}`)
    text(row.up, `↑ ${Format.rate(t.uploadRate)}`)
    text(row.eta, t.complete || t.state === "paused" ? "" : `ETA ${Format.duration(t.eta)}`)
    text(row.peers, `${t.peers} ${t.peers === 1 ? "peer" : "peers"}`)
    text(row.error, t.error === null ? "" : `${t.error.reason}: ${t.error.message}`)
    row.error.hidden = t.error === null
    const stopped = isStopped(t)
    text(row.toggle, stopped ? "Resume" : "Pause")
    row.toggle.title = stopped ? "Resume (p)" : "Pause (p)"
    row.li.hidden = !matches(t, filter)
    row.li.classList.toggle("selected", t.id === selected)
    row.li.setAttribute("aria-selected", String(t.id === selected))
  }

  /** Draws the torrent's row (new ones are inserted in id order). */
  const upsert = (t: Summary) => {
    let row = rows.get(t.id)
    if (row === undefined) {
      row = build(t)
      rows.set(t.id, row)
      const after = [...rows.keys()].filter((id) => id > t.id).sort((a, b) => a - b)[0]
      ul.insertBefore(row.li, after === undefined ? null : rows.get(after)!.li)
    }
    update(row, t)
  }

  const remove = (id: number) => {
    rows.get(id)?.li.remove()
    rows.delete(id)
    byId.delete(id)
  }

  /** Marks the selected row; scrolls to it only when the selection moved (never while the list just updates). */
  const select = (id: number | undefined) => {
    if (id === selected) return
    const mark = (rid: number | undefined, on: boolean) => {
      const row = rid === undefined ? undefined : rows.get(rid)
      row?.li.classList.toggle("selected", on)
      row?.li.setAttribute("aria-selected", String(on))
      return row
    }
    mark(selected, false)
    selected = id
    mark(id, true)?.li.scrollIntoView({ block: "nearest" })
  }

  const setFilter = (f: Filter) => {
    filter = f
    for (const [id, row] of rows) row.li.hidden = !matches(byId.get(id)!, f)
  }

  /** The torrents shown, in order. */
  const ids = () => [...rows.keys()].filter((id) => !rows.get(id)!.li.hidden).sort((a, b) => a - b)

  return { upsert, remove, select, setFilter, ids, size: () => rows.size }
}
