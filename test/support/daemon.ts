/**
 * `effect-torrent daemon` as a user starts it (the built CLI, `dist/cli.mjs`), in a child process on 127.0.0.1:
 * free ports for the API and for peers, its own download and state directories. Ready once it prints its
 * "API on …" line; `signal` sends SIGTERM or SIGKILL by PID; `exited` resolves with its code and signal. Every
 * daemon started is registered in `children` (the calling file's `afterAll` kills what is left, by PID).
 */
import { type ChildProcess, spawn } from "node:child_process"
import * as FetchHttpClient from "@effect/platform/FetchHttpClient"
import * as Effect from "effect/Effect"
import * as RemoteClient from "../../src/api/RemoteClient.ts"
import { bundle, cliEnv } from "./cli.ts"
import { freePort } from "./realSeeders.ts"

export interface Daemon {
  readonly pid: number
  readonly url: string
  readonly apiPort: number
  readonly peerPort: number
  readonly log: () => string
  readonly signal: (s: "SIGTERM" | "SIGKILL") => void
  readonly exited: Promise<{ readonly code: number | null; readonly signal: NodeJS.Signals | null }>
}

export interface DaemonOptions {
  readonly downloadDir: string
  readonly stateDir: string
  /** Same ports as a previous run (a restart), else free ones. */
  readonly apiPort?: number | undefined
  readonly peerPort?: number | undefined
  readonly extra?: ReadonlyArray<string> | undefined
}

export const start = async (children: Array<ChildProcess>, o: DaemonOptions): Promise<Daemon> => {
  const apiPort = o.apiPort ?? (await freePort())
  const peerPort = o.peerPort ?? (await freePort())
  const child = spawn(process.execPath, [
    bundle,
    "daemon",
    "--download-dir",
    o.downloadDir,
    "--state-dir",
    o.stateDir,
    "--http",
    `127.0.0.1:${apiPort}`,
    "--port",
    String(peerPort),
    "--bind",
    "127.0.0.1",
    "--no-dht",
    ...(o.extra ?? [])
  ], { env: cliEnv, stdio: ["ignore", "pipe", "pipe"] })
  children.push(child)
  let log = ""
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) =>
    child.once("exit", (code, signal) => resolve({ code, signal }))
  )
  await new Promise<void>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`the daemon did not start within 30 s:\n${log}`)), 30_000)
    const onData = (d: Buffer) => {
      log += d.toString()
      if (log.includes("API on ")) {
        clearTimeout(timer)
        resolve()
      }
    }
    child.stdout!.on("data", onData)
    child.stderr!.on("data", (d: Buffer) => void (log += d.toString()))
    void exited.then(({ code, signal }) => {
      clearTimeout(timer)
      reject(new Error(`the daemon exited (${code ?? signal}) before it was ready:\n${log}`))
    })
  })
  return {
    pid: child.pid!,
    url: `http://127.0.0.1:${apiPort}`,
    apiPort,
    peerPort,
    log: () => log,
    signal: (s) => {
      if (child.exitCode === null && child.signalCode === null) process.kill(child.pid!, s)
    },
    exited
  }
}

/**
 * Runs `f` with the typed client of the daemon at `url`. The test process reuses keep-alive sockets across calls;
 * on a loaded machine its idle timer can fire after the server's (5 s) closed one, and a request sent on it fails
 * with UND_ERR_SOCKET ("unreachable") — retried twice on a fresh socket. (The CLI makes one call per process.)
 */
export const withClient = <A>(
  url: string,
  f: (c: RemoteClient.RemoteClientShape) => Effect.Effect<A, RemoteClient.RemoteError>
): Promise<A> =>
  Effect.runPromise(
    RemoteClient.make({ baseUrl: url, timeout: "20 seconds" }).pipe(
      Effect.flatMap(f),
      Effect.retry({ times: 2, while: (e) => e.reason === "unreachable" && e.message.includes("UND_ERR_SOCKET") }),
      Effect.provide(FetchHttpClient.layer)
    )
  )

/** Polls `probe` every 200 ms until it returns a value (bounded). */
export const until = async <A>(what: string, probe: () => Promise<A | undefined>, timeoutMs: number): Promise<A> => {
  const deadline = Date.now() + timeoutMs
  let last: unknown
  while (Date.now() < deadline) {
    try {
      const a = await probe()
      if (a !== undefined) return a
    } catch (e) {
      last = e
    }
    await new Promise((r) => setTimeout(r, 200))
  }
  throw new Error(`${what}: not within ${timeoutMs} ms${last === undefined ? "" : ` (last error: ${String(last)})`}`)
}
