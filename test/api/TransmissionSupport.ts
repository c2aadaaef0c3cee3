/**
 * Debian's `transmission-remote` (package transmission-cli, Transmission 3.00) run against a server of ours: each
 * call is one child process, bounded in time (killed by its PID past the bound), its exit code and output returned.
 */
import { execFileSync, spawn } from "node:child_process"
import * as Effect from "effect/Effect"

export const BINARY = "transmission-remote"

export const isInstalled = (): boolean => {
  try {
    execFileSync("sh", ["-c", `command -v ${BINARY}`], { stdio: "ignore" })
    return true
  } catch {
    return false
  }
}

/** `true` to run; without the binary the suite is skipped loudly outside CI and fails in CI. */
export const shouldRun = (suite: string): boolean => {
  if (isInstalled()) return true
  if (process.env["CI"]) return true
  console.warn(`\n!!! SKIPPING ${suite}: transmission-remote is not installed (apt-get install transmission-cli) !!!\n`)
  return false
}

export interface Outcome {
  readonly code: number | null
  readonly stdout: string
  readonly stderr: string
}

/** `transmission-remote 127.0.0.1:<port> ...args`, at most `timeoutMs`. */
export const remote = (port: number, args: ReadonlyArray<string>, timeoutMs = 20_000): Effect.Effect<Outcome> =>
  Effect.async<Outcome>((resume) => {
    const child = spawn(BINARY, [`127.0.0.1:${port}`, ...args], { stdio: ["ignore", "pipe", "pipe"] })
    let stdout = ""
    let stderr = ""
    child.stdout.on("data", (d: Buffer) => void (stdout += d.toString()))
    child.stderr.on("data", (d: Buffer) => void (stderr += d.toString()))
    const timer = setTimeout(() => child.pid !== undefined && process.kill(child.pid, "SIGKILL"), timeoutMs)
    child.on("close", (code) => {
      clearTimeout(timer)
      resume(Effect.succeed({ code, stdout, stderr }))
    })
    return Effect.sync(() => {
      clearTimeout(timer)
      if (child.exitCode === null && child.pid !== undefined) process.kill(child.pid, "SIGKILL")
    })
  })

/** The same, failing (with everything it printed) unless it exits 0. */
export const remoteOk = (port: number, args: ReadonlyArray<string>): Effect.Effect<string, Error> =>
  Effect.flatMap(remote(port, args), (o) =>
    o.code === 0
      ? Effect.succeed(o.stdout)
      : Effect.fail(new Error(`transmission-remote ${args.join(" ")} exited ${o.code}:\n${o.stdout}\n${o.stderr}`)))

/** The rows of `-l` (header and "Sum:" left out), split on runs of two or more spaces. */
export const listRows = (stdout: string): ReadonlyArray<ReadonlyArray<string>> =>
  stdout.split("\n").slice(1).filter((l) => l.trim() !== "" && !l.startsWith("Sum:")).map((l) => l.trim().split(/\s{2,}/))

/** `Key: value` lines of `-i` / `-si` output. */
export const fieldsOf = (stdout: string): ReadonlyMap<string, string> =>
  new Map(stdout.split("\n").flatMap((l) => {
    const m = /^\s+([^:]+):\s*(.*)$/.exec(l)
    return m === null ? [] : [[m[1]!.trim(), m[2]!.trim()] as const]
  }))
