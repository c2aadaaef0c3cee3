// Receiver CPU for 1 GiB over loopback (onread) while writing R bytes back every K bytes received.
import net from "node:net"
import { fork } from "node:child_process"
const SIZE = 1 << 30
if (process.argv[2] === "send") {
  const srv = net.createServer((s) => {
    s.on("data", () => {})
    const chunk = Buffer.alloc(1 << 20, 7); let sent = 0
    const pump = () => { while (sent < SIZE) { sent += chunk.length; if (!s.write(chunk)) return s.once("drain", pump) } s.end() }
    pump()
  }).listen(0, "127.0.0.1", () => process.send(srv.address().port))
} else {
  const every = Number(process.argv[2])
  const child = fork(new URL(import.meta.url).pathname, ["send"])
  child.on("message", (port) => {
    const t0 = process.cpuUsage(); const w0 = Date.now(); let got = 0, n = 0, since = 0, writes = 0
    const buf = Buffer.allocUnsafe(256 * 1024)
    const s = net.connect({ port, host: "127.0.0.1", onread: { buffer: buf, callback: (k) => { got += k; n++; since += k; if (every > 0 && since >= every) { since = 0; writes++; s.write(Buffer.alloc(17 * (every >> 14))) } return true } } })
    s.setNoDelay(true)
    s.on("end", () => { const u = process.cpuUsage(t0); console.log(`every=${every} writes=${writes} wall=${Date.now() - w0}ms user=${(u.user / 1e6).toFixed(2)} sys=${(u.system / 1e6).toFixed(2)}`); child.kill() })
    s.resume()
  })
}
