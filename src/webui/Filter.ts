/** The list's filter: which torrents it shows. Pure (tested under Node). */
import type { Summary } from "./Wire.ts"

/**
 * Which torrents the list shows: a name part (any case) and a group of states ("" for all). "active": downloading,
 * checking or fetching metadata, or seeding with traffic (an idle seed is not); "downloading" includes magnets
 * fetching their metadata; "stopped": paused or finished.
 */
export interface Filter {
  readonly text: string
  readonly state: "" | "active" | "downloading" | "seeding" | "stopped" | "error"
}

const activeStates = new Set(["downloading", "seeding", "checking", "fetching-metadata"])

export const matches = (t: Summary, f: Filter): boolean => {
  if (f.text !== "" && !t.name.toLowerCase().includes(f.text.toLowerCase())) return false
  switch (f.state) {
    case "":
      return true
    case "active":
      return activeStates.has(t.state) && (t.downloadRate > 0 || t.uploadRate > 0 || t.state !== "seeding")
    case "stopped":
      return t.state === "paused" || t.state === "finished"
    default:
      return t.state === f.state || (f.state === "downloading" && t.state === "fetching-metadata")
  }
}
