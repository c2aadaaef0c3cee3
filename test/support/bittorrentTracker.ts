/**
 * The npm `bittorrent-tracker` server, in process, on 127.0.0.1 (HTTP, UDP) and ::1 (UDP), for interop tests.
 */
import Server from "bittorrent-tracker/server"
import type { AddressInfo } from "node:net"

export interface BittorrentTracker {
  readonly httpUrl: string
  readonly udp4Url: string
  /** `undefined` when this machine has no IPv6 loopback. */
  readonly udp6Url: string | undefined
  readonly close: () => Promise<void>
}

export const start = (options?: { readonly intervalMs?: number }): Promise<BittorrentTracker> =>
  new Promise((resolve, reject) => {
    const server = new Server({
      http: true,
      udp: true,
      ws: false,
      stats: false,
      ...(options?.intervalMs !== undefined ? { interval: options.intervalMs } : {})
    })
    let udp6Ok = true
    server.on("error", (err: Error) => {
      // Without IPv6 the udp6 bind fails; everything else is fatal for the test.
      if (/EADDRNOTAVAIL|EAFNOSUPPORT/.test(String(err))) udp6Ok = false
      else reject(err)
    })
    server.on("warning", () => {})
    server.listen(0, { http: "127.0.0.1", udp: "127.0.0.1", udp6: "::1" }, () => {
      const http = server.http!.address() as AddressInfo
      const udp4 = server.udp4!.address()
      const udp6 = udp6Ok ? server.udp6!.address() : undefined
      resolve({
        httpUrl: `http://127.0.0.1:${http.port}/announce`,
        udp4Url: `udp://127.0.0.1:${udp4.port}`,
        udp6Url: udp6 === undefined ? undefined : `udp://[::1]:${udp6.port}`,
        close: () => new Promise<void>((done) => server.close(() => done()))
      })
    })
  })
