/**
 * A way out for the failures a person can do something about: the one-line message of a torrent's failure with
 * what to try next (another `--port`, the parent folder for `seed`, what each tracker answered when no peer came).
 */
import * as Fs from "node:fs"
import * as NodePath from "node:path"
import type * as Metainfo from "../metainfo/Metainfo.ts"
import { sanitizeText } from "./Output.ts"
import { brief } from "./Progress.ts"

export interface Context {
  /** The last error of each tracker, from the torrent's TrackerError events. */
  readonly trackerErrors?: ReadonlyMap<string, string> | undefined
  /** `seed`'s data directory and the torrent. */
  readonly seedDir?: string | undefined
  readonly metainfo?: Metainfo.Metainfo | undefined
}

/** `seed DIR` given the torrent's own folder (DIR/<file> exists where DIR/<name>/<file> was expected). */
export const payloadFolder = (dir: string, m: Metainfo.Metainfo): boolean =>
  m.isMultiFile && m.files.some((f) => !f.pad && f.path.length > 1 && Fs.existsSync(NodePath.join(dir, ...f.path.slice(1))))

export const explain = (e: { readonly reason: string; readonly message: string }, context: Context = {}): string => {
  const message = sanitizeText(e.message)
  switch (e.reason) {
    case "listen-failed":
      if (/EADDRINUSE/.test(e.message)) {
        return `${message}: another program listens there; choose another port with --port N (--port 0: any free port)`
      }
      if (/EACCES/.test(e.message)) return `${message}: ports below 1024 need privileges; use --port 6881 or above`
      return message
    case "no-peers": {
      const trackers = [...(context.trackerErrors ?? new Map<string, string>())]
      if (trackers.length === 0) return message
      const listed = trackers.slice(0, 3).map(([url, why]) => `${sanitizeText(url)}: ${sanitizeText(brief(why))}`).join("; ")
      const more = trackers.length > 3 ? `; ${trackers.length - 3} more` : ""
      return `${message}; trackers: ${listed}${more}`
    }
    case "incomplete": {
      const { seedDir, metainfo } = context
      if (seedDir === undefined || metainfo === undefined || !payloadFolder(seedDir, metainfo)) return message
      const parent = NodePath.dirname(NodePath.resolve(seedDir))
      return `${message}; ${sanitizeText(seedDir)} looks like the torrent's own folder: give the folder that holds it, ` +
        `${sanitizeText(parent)}`
    }
    case "listen":
      // The daemon's HTTP API (ServerError): its port is chosen with --http, not --port.
      if (/EADDRINUSE/.test(e.message)) {
        return `${message}: another program (another daemon?) listens there; choose another address with --http HOST:PORT`
      }
      if (/EACCES/.test(e.message)) return `${message}: ports below 1024 need privileges; use --http 127.0.0.1:9091 or above`
      return message
    default:
      return message
  }
}
