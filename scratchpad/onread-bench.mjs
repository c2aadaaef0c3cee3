// Receiver CPU for 1 GiB over loopback: 'data' events vs onread into a shared 256 KiB buffer.
import net from "node:net"
import { fork } from "node:child_process"
const SIZE = 1 << 30
if (process.argv[2] === "send") {
  const srv = net.createServer((s) => {
    const chunk = Buffer.alloc(1 << 20, 7); let sent = 0
    const pump = () => { while (sent < SIZE) { sent += chunk.length; if (!s.write(chunk)) return s.once("drain", pump) } s.end() }
    pump()
  }).listen(0, "127.0.0.1", () => process.send(srv.address().port))
} else {
  const mode = process.argv[2]
  const child = fork(new URL(import.meta.url).pathname, ["send"])
  child.on("message", (port) => {
    const t0 = process.cpuUsage(); const w0 = Date.now(); let got = 0, n = 0, x = 0
    const onChunk = (c) => { got += c.length; n++; x ^= c[c.length - 1] }
    const done = () => { const u = process.cpuUsage(t0); console.log(mode, `reads=${n} got=${got} wall=${Date.now() - w0}ms user=${(u.user / 1e6).toFixed(2)} sys=${(u.system / 1e6).toFixed(2)}`); child.kill() }
    const buf = Buffer.allocUnsafe(256 * 1024)
    const s = mode === "onread"
      ? net.connect({ port, host: "127.0.0.1", onread: { buffer: buf, callback: (k, b) => { onChunk(b.subarray(0, k)); return true } } })
      : net.connect({ port, host: "127.0.0.1" })
    if (mode !== "onread") s.on("data", onChunk)
    s.on("end", done)
    if (mode === "onread") s.resume()
  })
}
