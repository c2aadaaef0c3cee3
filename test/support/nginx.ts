/**
 * Debian's nginx (nginx-light) serving files on 127.0.0.1 for web seed tests: a generated config in a temp dir
 * (`-p DIR -c nginx.conf -g 'daemon off;'`), pid file and logs there, ended by PID. The access log has one line
 * per request: `$connection $connection_requests $status $body_bytes_sent $request_uri $http_range`, so tests see keep-alive reuse
 * and what was asked.
 */
import { type ChildProcess, spawn } from "node:child_process"
import { chmodSync, existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs"
import * as Net from "node:net"
import { tmpdir } from "node:os"
import { dirname, join } from "node:path"
import { canConnect, freePort } from "./realSeeders.ts"

export const installed = (): boolean => existsSync("/usr/sbin/nginx")

/** Skip only when nginx is absent and this is not CI (where `.ci/run` installs it). */
export const shouldRun = (): boolean => {
  if (installed()) return true
  if (process.env["CI"] !== undefined) return true
  console.warn("SKIPPING web seed tests: /usr/sbin/nginx is not installed (apt-get install nginx-light)")
  return false
}

export interface AccessLine {
  readonly connection: number
  readonly requests: number
  readonly status: number
  /** Body bytes nginx wrote to the socket (all of a range it sent, even if the client aborted after). */
  readonly bytes: number
  readonly uri: string
  readonly range: string
}

export interface Nginx {
  readonly port: number
  readonly pid: number
  /** The document root: write files under it. */
  readonly root: string
  /** `http://127.0.0.1:PORT` + `path`. */
  readonly url: (path: string) => string
  readonly access: () => ReadonlyArray<AccessLine>
  /** Replaces the `server {}` block's extra directives and reloads (SIGHUP); resolves once a request sees it. */
  readonly reload: (locations: string, probe: { readonly path: string; readonly status: number }) => Promise<void>
  readonly stop: () => Promise<void>
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms))

const statusOf = (port: number, path: string): Promise<number> =>
  new Promise((resolve) => {
    const s = Net.connect(port, "127.0.0.1", () => {
      s.write(`GET ${path} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n`)
    })
    let head = ""
    s.on("data", (d: Buffer) => {
      head += d.toString("latin1")
      const m = /^HTTP\/1\.1 (\d+)/.exec(head)
      if (m !== null) {
        s.destroy()
        resolve(Number(m[1]))
      }
    })
    s.on("error", () => resolve(0))
  })

const config = (dir: string, port: number, locations: string) => `
worker_processes 1;
pid ${dir}/nginx.pid;
error_log ${dir}/error.log warn;
events { worker_connections 128; }
http {
  log_format ws '$connection $connection_requests $status $body_bytes_sent $request_uri "$http_range"';
  access_log ${dir}/access.log ws;
  client_body_temp_path ${dir}/tmp/body;
  proxy_temp_path ${dir}/tmp/proxy;
  fastcgi_temp_path ${dir}/tmp/fastcgi;
  uwsgi_temp_path ${dir}/tmp/uwsgi;
  scgi_temp_path ${dir}/tmp/scgi;
  default_type application/octet-stream;
  keepalive_requests 10000;
  keepalive_timeout 60s;
  server {
    listen 127.0.0.1:${port};
    root ${dir}/www;
    ${locations}
  }
}
`

/** Starts nginx with `locations` (directives inside `server {}`); `files` are written under the root first. */
export const start = async (
  files: ReadonlyArray<{ readonly path: string; readonly bytes: Uint8Array }>,
  locations = ""
): Promise<Nginx> => {
  const dir = mkdtempSync(join(tmpdir(), "et-nginx-"))
  chmodSync(dir, 0o755) // the worker runs as nobody when we are root
  mkdirSync(join(dir, "tmp"), { recursive: true })
  mkdirSync(join(dir, "www"), { recursive: true })
  for (const f of files) {
    const p = join(dir, "www", f.path)
    mkdirSync(dirname(p), { recursive: true })
    writeFileSync(p, f.bytes)
  }
  const port = await freePort()
  writeFileSync(join(dir, "nginx.conf"), config(dir, port, locations))
  const child: ChildProcess = spawn("/usr/sbin/nginx", ["-p", dir, "-c", join(dir, "nginx.conf"), "-g", "daemon off;"], {
    stdio: ["ignore", "pipe", "pipe"]
  })
  let log = ""
  child.stdout?.on("data", (d: Buffer) => (log += d.toString()))
  child.stderr?.on("data", (d: Buffer) => (log += d.toString()))
  for (let i = 0; i < 200 && !(await canConnect(port)); i++) {
    if (child.exitCode !== null) break
    await sleep(25)
  }
  if (!(await canConnect(port))) {
    if (child.pid !== undefined && child.exitCode === null) process.kill(child.pid, "SIGKILL")
    throw new Error(`nginx did not start: ${log} ${readIf(join(dir, "error.log"))}`)
  }
  const access = (): ReadonlyArray<AccessLine> =>
    readIf(join(dir, "access.log")).split("\n").filter((l) => l.length > 0).map((l) => {
      const m = /^(\d+) (\d+) (\d+) (\d+) (\S+) "(.*)"$/.exec(l)!
      return {
        connection: Number(m[1]),
        requests: Number(m[2]),
        status: Number(m[3]),
        bytes: Number(m[4]),
        uri: m[5]!,
        range: m[6]!
      }
    })
  return {
    port,
    pid: child.pid!,
    root: join(dir, "www"),
    url: (path) => `http://127.0.0.1:${port}${path}`,
    access,
    reload: async (locations, probe) => {
      writeFileSync(join(dir, "nginx.conf"), config(dir, port, locations))
      process.kill(child.pid!, "SIGHUP")
      for (let i = 0; i < 400; i++) {
        if ((await statusOf(port, probe.path)) === probe.status) return
        await sleep(25)
      }
      throw new Error(`nginx did not reload: ${readIf(join(dir, "error.log"))}`)
    },
    stop: async () => {
      if (child.exitCode === null && child.signalCode === null && child.pid !== undefined) {
        const exited = new Promise<void>((r) => child.once("exit", () => r()))
        process.kill(child.pid, "SIGTERM")
        const timer = setTimeout(() => child.pid !== undefined && process.kill(child.pid, "SIGKILL"), 2000)
        await exited
        clearTimeout(timer)
      }
      rmSync(dir, { recursive: true, force: true })
    }
  }
}

const readIf = (path: string): string => (existsSync(path) ? readFileSync(path, "utf8") : "")
