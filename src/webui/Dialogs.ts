/**
 * The dialogs (native `<dialog>`: Esc closes them, focus stays inside): adding torrents (files picked, a magnet
 * link or URL typed), dropping them on the page, removing one (deleting its data only when ticked), the global
 * speed limits, the shortcuts. Each reports through `notify`, never `alert`.
 */
import * as Client from "./Client.ts"
import { byId, text } from "./Dom.ts"
import type { Summary } from "./Wire.ts"

export interface Handlers {
  readonly notify: (message: string, error?: boolean) => void
}

const message = (e: unknown) => (e instanceof Error ? e.message : String(e))

/** Adds each source in turn; one line about all of them. */
const addAll = async (sources: ReadonlyArray<Blob | string>, paused: boolean, handlers: Handlers) => {
  const names: Array<string> = []
  for (const source of sources) {
    try {
      const added = await Client.add(source, paused ? { paused: "true" } : {})
      names.push(added.duplicate ? `${added.name} (already there)` : added.name)
    } catch (e) {
      handlers.notify(`Not added: ${message(e)}`, true)
    }
  }
  if (names.length > 0) handlers.notify(`Added ${names.join(", ")}`)
}

const isLink = (s: string) => /^(magnet:|https?:\/\/)/i.test(s.trim())

export const makeAdd = (handlers: Handlers) => {
  const dialog = byId<HTMLDialogElement>("add-dialog")
  const file = byId<HTMLInputElement>("add-file")
  const link = byId<HTMLInputElement>("add-link")
  const paused = byId<HTMLInputElement>("add-paused")
  byId("add-form").addEventListener("submit", (e) => {
    e.preventDefault()
    const sources: Array<Blob | string> = [...(file.files ?? [])]
    const typed = link.value.trim()
    if (typed !== "") {
      if (!isLink(typed)) {
        handlers.notify("Expected a magnet link (magnet:?xt=…) or an http(s) URL of a .torrent", true)
        return
      }
      sources.push(typed)
    }
    if (sources.length === 0) {
      handlers.notify("Pick a .torrent file or type a magnet link first", true)
      return
    }
    dialog.close()
    void addAll(sources, paused.checked, handlers)
  })
  byId("add-cancel").addEventListener("click", () => dialog.close())
  const open = () => {
    file.value = ""
    link.value = ""
    dialog.showModal()
    link.focus()
  }
  byId("add-button").addEventListener("click", open)

  // Drag and drop anywhere: .torrent files, or a magnet link / URL dragged as text.
  const drop = byId("drop")
  let depth = 0
  const carries = (e: DragEvent) => [...(e.dataTransfer?.types ?? [])].some((t) => t === "Files" || t === "text/uri-list" || t === "text/plain")
  window.addEventListener("dragenter", (e) => {
    if (!carries(e)) return
    e.preventDefault()
    depth++
    drop.hidden = false
  })
  window.addEventListener("dragover", (e) => {
    if (!carries(e)) return
    e.preventDefault()
    if (e.dataTransfer !== null) e.dataTransfer.dropEffect = "copy"
  })
  window.addEventListener("dragleave", () => {
    depth = Math.max(0, depth - 1)
    if (depth === 0) drop.hidden = true
  })
  window.addEventListener("drop", (e) => {
    e.preventDefault()
    depth = 0
    drop.hidden = true
    const data = e.dataTransfer
    if (data === null) return
    const files = [...data.files].filter((f) => f.name.toLowerCase().endsWith(".torrent") || f.type === "application/x-bittorrent")
    const typed = (data.getData("text/uri-list") || data.getData("text/plain")).split(/\r?\n/).map((s) => s.trim()).filter(isLink)
    if (files.length + typed.length === 0) {
      handlers.notify("Nothing to add: drop .torrent files or a magnet link", true)
      return
    }
    void addAll([...files, ...typed], false, handlers)
  })
  return { open }
}

export const makeRemove = (handlers: Handlers & { readonly removed: (id: number) => void }) => {
  const dialog = byId<HTMLDialogElement>("remove-dialog")
  const data = byId<HTMLInputElement>("remove-data")
  const warning = byId("remove-warning")
  const confirm = byId<HTMLButtonElement>("remove-confirm")
  let target: Summary | undefined
  const sync = () => {
    warning.hidden = !data.checked
    text(confirm, data.checked ? "Remove and delete data" : "Remove")
  }
  data.addEventListener("change", sync)
  byId("remove-cancel").addEventListener("click", () => dialog.close())
  dialog.querySelector("form")!.addEventListener("submit", (e) => {
    e.preventDefault()
    dialog.close()
    const t = target
    if (t === undefined) return
    const deleteData = data.checked
    Client.remove(t.infoHash, deleteData).then(
      () => {
        handlers.removed(t.id)
        handlers.notify(deleteData ? `Removed ${t.name} and deleted its data` : `Removed ${t.name}`)
      },
      (err: unknown) => handlers.notify(`Not removed: ${message(err)}`, true)
    )
  })
  const open = (t: Summary) => {
    target = t
    text(byId("remove-name"), t.name)
    data.checked = false
    sync()
    dialog.showModal()
    byId("remove-cancel").focus()
  }
  return { open }
}

const KiB = 1024

export const makeLimits = (handlers: Handlers) => {
  const dialog = byId<HTMLDialogElement>("limits-dialog")
  const down = byId<HTMLInputElement>("limit-down")
  const up = byId<HTMLInputElement>("limit-up")
  const button = byId("limits-button")
  const show = (s: { readonly downloadLimit: number; readonly uploadLimit: number }) => {
    const part = (n: number) => (n === 0 ? "∞" : `${Math.round(n / KiB)} KiB/s`)
    button.title = `Speed limits: ↓ ${part(s.downloadLimit)}, ↑ ${part(s.uploadLimit)} (l)`
    button.classList.toggle("limited", s.downloadLimit > 0 || s.uploadLimit > 0)
  }
  byId("limits-form").addEventListener("submit", (e) => {
    e.preventDefault()
    const read = (input: HTMLInputElement) => {
      const v = Number(input.value === "" ? "0" : input.value)
      return Number.isFinite(v) && v >= 0 ? Math.round(v * KiB) : undefined
    }
    const d = read(down)
    const u = read(up)
    if (d === undefined || u === undefined) {
      handlers.notify("Limits are numbers of KiB/s, 0 or more", true)
      return
    }
    dialog.close()
    Client.updateSettings({ downloadLimit: d, uploadLimit: u }).then(
      (s) => {
        show(s)
        handlers.notify(`Limits saved: ↓ ${d === 0 ? "unlimited" : `${d / KiB} KiB/s`}, ↑ ${u === 0 ? "unlimited" : `${u / KiB} KiB/s`}`)
      },
      (err: unknown) => handlers.notify(`Limits not saved: ${message(err)}`, true)
    )
  })
  byId("limits-cancel").addEventListener("click", () => dialog.close())
  const open = () => {
    Client.settings().then(
      (s) => {
        show(s)
        down.value = String(Math.round(s.downloadLimit / KiB))
        up.value = String(Math.round(s.uploadLimit / KiB))
        dialog.showModal()
        down.focus()
        down.select()
      },
      (err: unknown) => handlers.notify(message(err), true)
    )
  }
  button.addEventListener("click", open)
  void Client.settings().then(show, () => {})
  return { open }
}

export const makeHelp = () => {
  const dialog = byId<HTMLDialogElement>("help-dialog")
  const open = () => dialog.showModal()
  byId("help-button").addEventListener("click", open)
  return { open }
}

/** Whether a dialog is open (shortcuts other than Esc wait until it closes). */
export const anyOpen = (): boolean => document.querySelector("dialog[open]") !== null
