/**
 * The web UI's wiring: the list from `GET /api/torrents`, kept current by `GET /api/events` (Server-Sent Events;
 * after a reconnect the list is fetched again, and once a minute as a fallback — nothing else polls), rows redrawn
 * once per animation frame for whatever changed, the details, the dialogs, the speed graph, the theme and the
 * keyboard shortcuts.
 */
import * as Client from "./Client.ts"
import * as Detail from "./Detail.ts"
import * as Dialogs from "./Dialogs.ts"
import { byId } from "./Dom.ts"
import type * as Filter from "./Filter.ts"
import * as Format from "./Format.ts"
import * as Graph from "./Graph.ts"
import * as List from "./List.ts"
import * as Store from "./Store.ts"
import * as Theme from "./Theme.ts"
import type { SessionEvent, Summary } from "./Wire.ts"

const FALLBACK_REFRESH_MS = 60_000
const RECONNECT_MS = 5_000

const store = Store.make()
let selected: number | undefined

// --- status line -------------------------------------------------------------------------------------------------
const status = byId("status")
let statusTimer: ReturnType<typeof setTimeout> | undefined
const notify = (message: string, error = false) => {
  status.textContent = message
  status.classList.toggle("error", error)
  status.hidden = false
  status.setAttribute("role", error ? "alert" : "status")
  if (statusTimer !== undefined) clearTimeout(statusTimer)
  statusTimer = setTimeout(() => (status.hidden = true), error ? 10_000 : 5_000)
}

// --- list, details, dialogs ----------------------------------------------------------------------------------------
const toggle = (t: Summary) => {
  const action = List.isStopped(t) ? Client.resume : Client.pause
  action(t.infoHash).catch((e: unknown) => notify(e instanceof Error ? e.message : String(e), true))
}

const detail = Detail.make({
  notify,
  close: () => detail.close(),
  summary: (id) => store.torrents.get(id)
})

const select = (id: number | undefined, open: boolean) => {
  selected = id
  list.select(id)
  if (id !== undefined && (open || detail.isOpen())) detail.open(id)
}

const remover = Dialogs.makeRemove({
  notify,
  removed: (id) => forget(id)
})

const list = List.make(byId<HTMLUListElement>("list"), {
  select,
  toggle,
  remove: (t) => remover.open(t)
})

const adder = Dialogs.makeAdd({ notify })
const limits = Dialogs.makeLimits({ notify })
const help = Dialogs.makeHelp()
const graph = Graph.make(byId<HTMLCanvasElement>("graph"))
const theme = Theme.make(byId<HTMLButtonElement>("theme-toggle"), () => graph.draw())

const empty = byId("empty")
const noMatch = byId("no-match")
const count = byId("count")
/** The messages under the list and the count, after any change to the list or the filter. */
const counted = () => {
  const shown = list.ids().length
  const all = store.torrents.size
  empty.hidden = all > 0
  noMatch.hidden = all === 0 || shown > 0
  count.textContent = all === 0 ? "" : shown === all ? `${all} torrent${all === 1 ? "" : "s"}` : `${shown} of ${all}`
}

const forget = (id: number) => {
  store.torrents.delete(id)
  list.remove(id)
  if (detail.current() === id) detail.close()
  if (selected === id) {
    selected = undefined
    list.select(undefined)
  }
  counted()
}

// --- filter --------------------------------------------------------------------------------------------------------
const filterText = byId<HTMLInputElement>("filter")
const filterState = byId<HTMLSelectElement>("state-filter")
const applyFilter = () => {
  list.setFilter({ text: filterText.value.trim(), state: filterState.value as Filter.Filter["state"] })
  counted()
}
filterText.addEventListener("input", applyFilter)
filterState.addEventListener("change", applyFilter)
filterText.addEventListener("keydown", (e) => {
  if (e.key === "Escape" || e.key === "Enter") {
    if (e.key === "Escape") filterText.value = ""
    applyFilter()
    filterText.blur()
  }
})

// --- drawing, once per frame ---------------------------------------------------------------------------------------
const dirty = new Set<number>()
let frame = 0
const flush = () => {
  frame = 0
  for (const id of dirty) {
    const t = store.torrents.get(id)
    if (t === undefined) list.remove(id)
    else list.upsert(t)
  }
  dirty.clear()
  counted()
}
const redraw = (id: number) => {
  dirty.add(id)
  if (frame === 0) frame = requestAnimationFrame(flush)
}

const totalDown = byId("total-down")
const totalUp = byId("total-up")
setInterval(() => {
  const rates = Store.totals(store)
  totalDown.textContent = `↓ ${Format.rate(rates.down)}`
  totalUp.textContent = `↑ ${Format.rate(rates.up)}`
  document.title = rates.down + rates.up > 0 ? `↓ ${Format.rate(rates.down)} ↑ ${Format.rate(rates.up)} · effect-torrent` : "effect-torrent"
  graph.sample(rates)
}, 1000)

// --- data: the list, then the event stream -------------------------------------------------------------------------
const refresh = async () => {
  try {
    const torrents = await Client.list()
    for (const id of Store.reset(store, torrents)) forget(id)
    for (const t of torrents) redraw(t.id)
    if (torrents.length === 0) counted()
  } catch (e) {
    notify(`Cannot list the torrents: ${e instanceof Error ? e.message : String(e)}`, true)
  }
}

const EVENTS: ReadonlyArray<SessionEvent["_tag"]> = ["Added", "Removed", "Changed", "Progress", "PieceVerified", "Completed", "Stats"]

const onEvent = (event: SessionEvent) => {
  const change = Store.apply(store, event)
  if (change._tag === "Upsert") redraw(change.id)
  else if (change._tag === "Remove") forget(change.id)
  detail.onEvent(event)
}

let source: EventSource | undefined
const connect = () => {
  source?.close()
  const es = new EventSource(Client.eventsUrl)
  source = es
  let wasDown = false
  es.addEventListener("open", () => {
    document.body.classList.remove("offline")
    // Whatever happened while the stream was down (or before it opened) is in a fresh list.
    void refresh()
    if (wasDown) notify("Connected again")
    wasDown = false
  })
  es.addEventListener("error", () => {
    document.body.classList.add("offline")
    if (!wasDown) notify("Lost the connection to the daemon; reconnecting…", true)
    wasDown = true
    // EventSource retries by itself unless the answer was not an event stream (a 401, a restart's 503): then later.
    if (es.readyState === EventSource.CLOSED) setTimeout(() => source === es && connect(), RECONNECT_MS)
  })
  for (const name of EVENTS) {
    es.addEventListener(name, (m) => {
      try {
        onEvent(JSON.parse((m as MessageEvent<string>).data) as SessionEvent)
      } catch (e) {
        notify(`A bad event from the daemon: ${e instanceof Error ? e.message : String(e)}`, true)
      }
    })
  }
}

void refresh()
connect()
setInterval(() => void refresh(), FALLBACK_REFRESH_MS)

// --- keyboard --------------------------------------------------------------------------------------------------------
const move = (by: number) => {
  const ids = list.ids()
  if (ids.length === 0) return
  const at = selected === undefined ? -1 : ids.indexOf(selected)
  const next = ids[Math.min(ids.length - 1, Math.max(0, at < 0 ? (by > 0 ? 0 : ids.length - 1) : at + by))]
  select(next, false)
}

document.addEventListener("keydown", (e) => {
  if (e.ctrlKey || e.metaKey || e.altKey) return
  if (Dialogs.anyOpen()) return
  const target = e.target as HTMLElement
  if (target.closest("input, select, textarea") !== null) return
  const chosen = selected === undefined ? undefined : store.torrents.get(selected)
  let handled = true
  switch (e.key) {
    case "a":
      adder.open()
      break
    case "/":
      filterText.focus()
      filterText.select()
      break
    case "l":
      limits.open()
      break
    case "t":
      theme.cycle()
      break
    case "?":
      help.open()
      break
    case "j":
    case "ArrowDown":
      move(1)
      break
    case "k":
    case "ArrowUp":
      move(-1)
      break
    case "Enter":
      if (selected !== undefined) detail.open(selected)
      break
    case "p":
    case " ":
      if (chosen !== undefined) toggle(chosen)
      break
    case "Delete":
      if (chosen !== undefined) remover.open(chosen)
      break
    case "Escape":
      if (detail.isOpen()) detail.close()
      else handled = false
      break
    case "1":
    case "2":
    case "3":
    case "4":
      if (detail.isOpen()) detail.showTab(Detail.tabs[Number(e.key) - 1]!)
      else handled = false
      break
    default:
      handled = false
  }
  if (handled) e.preventDefault()
})
