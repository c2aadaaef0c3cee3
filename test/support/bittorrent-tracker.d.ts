// Minimal types for the npm `bittorrent-tracker` server (the package ships none); only what the tests use.
declare module "bittorrent-tracker/server" {
  import type { EventEmitter } from "node:events"
  import type * as Dgram from "node:dgram"
  import type * as Http from "node:http"

  interface ServerOptions {
    readonly interval?: number
    readonly http?: boolean
    readonly udp?: boolean
    readonly ws?: boolean
    readonly stats?: boolean
    readonly trustProxy?: boolean
  }

  export default class Server extends EventEmitter {
    constructor(options?: ServerOptions)
    readonly http: Http.Server | null
    readonly udp4: Dgram.Socket | null
    readonly udp6: Dgram.Socket | null
    listen(
      port: number,
      hostname: { readonly http?: string; readonly udp?: string; readonly udp6?: string },
      onListening?: () => void
    ): void
    close(cb?: (err?: unknown) => void): void
  }
}
