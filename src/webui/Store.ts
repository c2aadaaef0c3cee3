/**
 * The torrents as the page knows them: the list answered by `GET /api/torrents`, kept current by the event stream.
 * Pure (no DOM): `apply` folds one SessionEvent in and says which torrent changed, so that only its row is redrawn.
 * Progress events carry progress, rates and peers only: the verified bytes and the ETA are derived from them.
 */
import * as Format from "./Format.ts"
import type { SessionEvent, Summary } from "./Wire.ts"

export type Change =
  | { readonly _tag: "Upsert"; readonly id: number }
  | { readonly _tag: "Remove"; readonly id: number }
  | { readonly _tag: "None" }

export interface Store {
  readonly torrents: Map<number, Summary>
}

export const make = (): Store => ({ torrents: new Map() })

/** Replaces everything with a fresh list; the ids that went away. */
export const reset = (store: Store, list: ReadonlyArray<Summary>): ReadonlyArray<number> => {
  const gone = new Set(store.torrents.keys())
  store.torrents.clear()
  for (const t of list) {
    store.torrents.set(t.id, t)
    gone.delete(t.id)
  }
  return [...gone]
}

export const apply = (store: Store, event: SessionEvent): Change => {
  switch (event._tag) {
    case "Added":
    case "Changed":
      store.torrents.set(event.torrent.id, event.torrent)
      return { _tag: "Upsert", id: event.torrent.id }
    case "Removed":
      return store.torrents.delete(event.id) ? { _tag: "Remove", id: event.id } : { _tag: "None" }
    case "Progress": {
      const t = store.torrents.get(event.id)
      if (t === undefined) return { _tag: "None" }
      const haveSize = Math.round(event.progress * t.wantedSize)
      store.torrents.set(event.id, {
        ...t,
        progress: event.progress,
        haveSize,
        downloadRate: event.downloadRate,
        uploadRate: event.uploadRate,
        peers: event.peers,
        eta: Format.eta(t.wantedSize - haveSize, event.downloadRate)
      })
      return { _tag: "Upsert", id: event.id }
    }
    case "Completed": {
      const t = store.torrents.get(event.id)
      if (t === undefined) return { _tag: "None" }
      store.torrents.set(event.id, { ...t, complete: true, progress: 1, haveSize: t.wantedSize, eta: null })
      return { _tag: "Upsert", id: event.id }
    }
    case "PieceVerified":
    case "Stats":
      return { _tag: "None" }
  }
}

/** Download and upload rates of all torrents together. */
export const totals = (store: Store): { readonly down: number; readonly up: number } => {
  let down = 0
  let up = 0
  for (const t of store.torrents.values()) {
    down += t.downloadRate
    up += t.uploadRate
  }
  return { down, up }
}

/** The order of the list: as added (the ids grow). */
export const ordered = (store: Store): ReadonlyArray<Summary> => [...store.torrents.values()].sort((a, b) => a.id - b.id)
