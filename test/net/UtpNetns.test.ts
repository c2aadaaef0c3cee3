/**
 * uTP through a real bottleneck: a network namespace (created and removed by the test; root needed) whose loopback
 * goes through a token-bucket qdisc (`tbf rate 16mbit`, a 100 ms queue, tail drop). The kernel queues and drops our
 * datagrams; a 4 MB transfer between two UtpSockets inside the namespace (UtpNetns.child.ts) arrives exact, and the
 * sender had to recover from real losses.
 *
 * This VM's kernel has no `sch_netem`, so delay and random loss cannot be added here (docs/UTP.md); `tbf`'s queue
 * gives a bottleneck with queueing delay and tail drops instead. Skipped loudly without root or `ip`/`tc`.
 */
import { execFile, execFileSync } from "node:child_process"
import * as Path from "node:path"
import { describe, expect, it } from "@effect/vitest"
import * as Effect from "effect/Effect"

const canRun = (() => {
  try {
    if (process.getuid?.() !== 0) return false
    execFileSync("ip", ["-V"], { stdio: "ignore" })
    execFileSync("tc", ["-V"], { stdio: "ignore" })
    return true
  } catch {
    return false
  }
})()
if (!canRun) console.warn("\n!!! SKIPPING uTP netns test: needs root, ip and tc !!!\n")

const ns = `utp-test-${process.pid}`
const sh = (args: ReadonlyArray<string>) => execFileSync(args[0]!, args.slice(1), { stdio: "pipe" })

describe.runIf(canRun)("uTP through a namespace bottleneck (tbf)", () => {
  it.live("4 MB cross a 16 Mbit/s tail-drop bottleneck exact (the sender recovering from its drops)", () =>
    Effect.acquireUseRelease(
      Effect.sync(() => {
        sh(["ip", "netns", "add", ns])
        sh(["ip", "netns", "exec", ns, "ip", "link", "set", "lo", "up"])
        // tbf drops packets larger than its bucket: keep loopback packets at Ethernet size.
        sh(["ip", "netns", "exec", ns, "ip", "link", "set", "lo", "mtu", "1500"])
        sh(["ip", "netns", "exec", ns, "tc", "qdisc", "add", "dev", "lo", "root", "tbf", "rate", "16mbit", "burst",
          "16kb", "latency", "100ms"])
      }),
      () =>
        Effect.async<string>((resume) => {
          const child = Path.join(import.meta.dirname, "UtpNetns.child.ts")
          execFile("ip", ["netns", "exec", ns, process.execPath, "--import", "tsx", child, "4000000"], {
            timeout: 120_000
          }, (error, stdout, stderr) => {
            resume(error === null ? Effect.succeed(stdout) : Effect.dieMessage(`child failed: ${error.message}\n${stderr}`))
          })
        }).pipe(Effect.map((stdout) => {
          const result = JSON.parse(stdout.trim().split("\n").at(-1)!) as {
            exact: boolean
            seconds: number
            sender: { retransmissions: number; lossEvents: number }
          }
          console.log(`uTP through tbf 16 Mbit/s: ${JSON.stringify(result)}`)
          expect(result.exact).toBe(true)
        })),
      () => Effect.sync(() => sh(["ip", "netns", "del", ns]))
    ), 150_000)
})
