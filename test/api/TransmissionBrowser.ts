/**
 * Debian's Chromium, headless, driven over the DevTools protocol through a pipe (`--remote-debugging-pipe`: JSON
 * messages ended by NUL on file descriptors 3 and 4, no WebSocket and no npm package needed), enough to use a page
 * as a person does: navigate, read the page (evaluate), click at an element's centre with the mouse, type, press
 * keys, pick a file in a file input, drop files on the page, answer the browser's password prompt, resize the
 * window to a phone's, prefer a dark colour scheme, take screenshots. Every `alert`/`confirm` the page opens, every uncaught exception and
 * every console error is recorded (and dialogs are dismissed) so that a test can require that there were none.
 * `close()` ends the browser by its PID and removes its profile.
 */
import { type ChildProcess, spawn } from "node:child_process"
import * as Fs from "node:fs"
import * as Os from "node:os"
import * as Path from "node:path"
import type { Readable, Writable } from "node:stream"
import { gate } from "./TransmissionSupport.ts"

export const BINARY = "chromium"

export const shouldRun = (suite: string): boolean => gate(BINARY, suite, "apt-get install chromium")

/** Where screenshots go: kept after the run, never committed (`.tmp/` is ignored by git). */
export const artifactsDir = (suite: string): string => {
  const dir = Path.join(process.cwd(), ".tmp", "artifacts", suite)
  Fs.mkdirSync(dir, { recursive: true })
  return dir
}

interface Pending {
  readonly resolve: (v: Record<string, unknown>) => void
  readonly reject: (e: Error) => void
  readonly method: string
}

export interface Browser {
  readonly pid: number
  /** Alerts and confirms the page opened, page exceptions and console errors, in order. */
  readonly problems: () => ReadonlyArray<string>
  readonly navigate: (url: string) => Promise<void>
  /** The value of a JavaScript expression in the page (awaited when it is a promise). */
  readonly evaluate: <A>(expression: string) => Promise<A>
  /** Waits until `expression` is truthy in the page (polled every 100 ms, bounded); its value. */
  readonly waitFor: <A>(what: string, expression: string, timeoutMs?: number) => Promise<A>
  /** A mouse click at the centre of the first element matching `selector`. */
  readonly click: (selector: string) => Promise<void>
  readonly type: (text: string) => Promise<void>
  /** Sets the files of a file input, as a person picking them does (change events fire). */
  readonly setFiles: (selector: string, files: ReadonlyArray<string>) => Promise<void>
  /** One key pressed and released: a character ("a", "?") or a named key ("Enter", "Escape", "Delete", "ArrowDown"). */
  readonly press: (key: string) => Promise<void>
  /** Files dragged from the desktop and dropped at the centre of the first element matching `selector`. */
  readonly dropFiles: (selector: string, files: ReadonlyArray<string>) => Promise<void>
  /** Answers every HTTP authentication prompt from now on with these credentials (as a person typing them). */
  readonly authenticate: (username: string, password: string) => Promise<void>
  readonly setViewport: (viewport: { readonly width: number; readonly height: number; readonly mobile?: boolean }) => Promise<void>
  /** `prefers-color-scheme` as the page sees it. */
  readonly setColorScheme: (scheme: "light" | "dark") => Promise<void>
  readonly screenshot: (file: string) => Promise<void>
  readonly close: () => Promise<void>
}

/** Keys that are not characters: what CDP needs to make them real key events (Esc closes a dialog, Enter submits). */
const NAMED_KEYS: Readonly<Record<string, { readonly code: string; readonly keyCode: number; readonly text?: string }>> = {
  Enter: { code: "Enter", keyCode: 13, text: "\r" },
  Escape: { code: "Escape", keyCode: 27 },
  Delete: { code: "Delete", keyCode: 46 },
  Backspace: { code: "Backspace", keyCode: 8 },
  Tab: { code: "Tab", keyCode: 9 },
  " ": { code: "Space", keyCode: 32, text: " " },
  ArrowDown: { code: "ArrowDown", keyCode: 40 },
  ArrowUp: { code: "ArrowUp", keyCode: 38 }
}

export const launch = async (options: { readonly width?: number; readonly height?: number } = {}): Promise<Browser> => {
  const profile = Fs.mkdtempSync(Path.join(Os.tmpdir(), "et-chromium-"))
  const child: ChildProcess = spawn(BINARY, [
    "--headless=new",
    "--remote-debugging-pipe",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-dev-shm-usage",
    "--no-first-run",
    "--no-default-browser-check",
    "--disable-extensions",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--metrics-recording-only",
    `--user-data-dir=${profile}`,
    "about:blank"
  ], { stdio: ["ignore", "ignore", "pipe", "pipe", "pipe"], detached: true })
  let stderr = ""
  child.stderr!.on("data", (d: Buffer) => void (stderr += d.toString()))
  const toBrowser = child.stdio[3] as Writable
  const fromBrowser = child.stdio[4] as Readable

  let nextId = 1
  const pending = new Map<number, Pending>()
  const problems: Array<string> = []
  let sessionId: string | undefined
  let buffered = Buffer.alloc(0)
  const exited = new Promise<void>((resolve) => child.once("exit", () => resolve()))
  void exited.then(() => {
    for (const p of pending.values()) p.reject(new Error(`chromium exited during ${p.method}: ${stderr.slice(-2000)}`))
    pending.clear()
  })

  const send = (method: string, params: Record<string, unknown> = {}, session = sessionId): Promise<Record<string, unknown>> =>
    new Promise((resolve, reject) => {
      const id = nextId++
      pending.set(id, { resolve, reject, method })
      toBrowser.write(JSON.stringify({ id, method, params, ...(session !== undefined ? { sessionId: session } : {}) }) + "\0")
    })

  let credentials: { readonly username: string; readonly password: string } | undefined
  const onEvent = (method: string, params: Record<string, unknown>) => {
    if (method === "Fetch.requestPaused") {
      void send("Fetch.continueRequest", { requestId: params["requestId"] }).catch(() => {})
    } else if (method === "Fetch.authRequired") {
      const response = credentials === undefined
        ? { response: "CancelAuth" }
        : { response: "ProvideCredentials", username: credentials.username, password: credentials.password }
      void send("Fetch.continueWithAuth", { requestId: params["requestId"], authChallengeResponse: response }).catch(() => {})
    } else if (method === "Page.javascriptDialogOpening") {
      problems.push(`${String(params["type"])}: ${String(params["message"])}`)
      void send("Page.handleJavaScriptDialog", { accept: false }).catch(() => {})
    } else if (method === "Runtime.exceptionThrown") {
      const d = params["exceptionDetails"] as { text?: string; exception?: { description?: string } } | undefined
      problems.push(`exception: ${d?.exception?.description ?? d?.text ?? "?"}`)
    } else if (method === "Runtime.consoleAPICalled" && params["type"] === "error") {
      const args = (params["args"] as Array<{ value?: unknown; description?: string }> | undefined) ?? []
      problems.push(`console.error: ${args.map((a) => String(a.value ?? a.description ?? "")).join(" ")}`)
    } else if (method === "Log.entryAdded") {
      const e = params["entry"] as { level?: string; text?: string; url?: string } | undefined
      if (e?.level === "error") problems.push(`log: ${e.text ?? ""} ${e.url ?? ""}`)
    }
  }

  fromBrowser.on("data", (chunk: Buffer) => {
    buffered = Buffer.concat([buffered, chunk])
    for (;;) {
      const end = buffered.indexOf(0)
      if (end < 0) break
      const message = JSON.parse(buffered.subarray(0, end).toString("utf8")) as {
        id?: number
        result?: Record<string, unknown>
        error?: { message: string }
        method?: string
        params?: Record<string, unknown>
      }
      buffered = buffered.subarray(end + 1)
      if (message.id !== undefined) {
        const p = pending.get(message.id)
        pending.delete(message.id)
        if (p === undefined) continue
        if (message.error !== undefined) p.reject(new Error(`${p.method}: ${message.error.message}`))
        else p.resolve(message.result ?? {})
      } else if (message.method !== undefined) {
        onEvent(message.method, message.params ?? {})
      }
    }
  })

  // Chromium runs in its own process group (detached): its renderer and utility helpers keep writing the profile
  // after the browser process itself is gone, so ending the browser means ending the group we started.
  const killGroup = () => {
    if (child.pid === undefined) return
    try {
      process.kill(-child.pid, "SIGKILL")
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code !== "ESRCH") throw e
    }
  }
  const close = async () => {
    if (child.exitCode === null && child.signalCode === null) {
      // A polite close first (flushes and stops the helpers), bounded; then the group, whatever is left of it.
      await Promise.race([send("Browser.close", {}, undefined).catch(() => {}), new Promise((r) => setTimeout(r, 3000))])
      await Promise.race([exited, new Promise((r) => setTimeout(r, 3000))])
    }
    killGroup()
    await exited
    for (let attempt = 0; ; attempt++) {
      try {
        Fs.rmSync(profile, { recursive: true, force: true, maxRetries: 5, retryDelay: 100 })
        return
      } catch (e) {
        if (attempt >= 20 || (e as NodeJS.ErrnoException).code !== "ENOTEMPTY") throw e
        killGroup()
        await new Promise((r) => setTimeout(r, 200))
      }
    }
  }

  try {
    const { targetId } = await send("Target.createTarget", { url: "about:blank" }, undefined) as { targetId: string }
    const attached = await send("Target.attachToTarget", { targetId, flatten: true }, undefined) as { sessionId: string }
    sessionId = attached.sessionId
    await send("Page.enable")
    await send("Runtime.enable")
    await send("Log.enable")
    await send("Emulation.setDeviceMetricsOverride", {
      width: options.width ?? 1280,
      height: options.height ?? 800,
      deviceScaleFactor: 1,
      mobile: false
    })
  } catch (e) {
    await close()
    throw e
  }

  const evaluate = async <A>(expression: string): Promise<A> => {
    const r = await send("Runtime.evaluate", { expression, awaitPromise: true, returnByValue: true }) as {
      result: { value?: unknown }
      exceptionDetails?: { text: string; exception?: { description?: string } }
    }
    if (r.exceptionDetails !== undefined) {
      throw new Error(`${expression}: ${r.exceptionDetails.exception?.description ?? r.exceptionDetails.text}`)
    }
    return r.result.value as A
  }

  const waitFor = async <A>(what: string, expression: string, timeoutMs = 30_000): Promise<A> => {
    const deadline = Date.now() + timeoutMs
    let last: unknown
    while (Date.now() < deadline) {
      try {
        const v = await evaluate<A>(expression)
        if (v) return v
        last = v
      } catch (e) {
        last = e
      }
      await new Promise((r) => setTimeout(r, 100))
    }
    throw new Error(`${what}: not within ${timeoutMs} ms (last: ${String(last)}; problems: ${problems.join(" | ")})`)
  }

  const centre = async (selector: string) => {
    const box = await evaluate<{ x: number; y: number } | null>(`(() => {
      const e = document.querySelector(${JSON.stringify(selector)})
      if (e === null) return null
      e.scrollIntoView({ block: "center", inline: "center" })
      const r = e.getBoundingClientRect()
      return r.width > 0 && r.height > 0 ? { x: r.left + r.width / 2, y: r.top + r.height / 2 } : null
    })()`)
    if (box === null) throw new Error(`no visible element ${selector}`)
    return box
  }

  const click = async (selector: string) => {
    const box = await centre(selector)
    await send("Input.dispatchMouseEvent", { type: "mouseMoved", x: box.x, y: box.y })
    await send("Input.dispatchMouseEvent", { type: "mousePressed", x: box.x, y: box.y, button: "left", clickCount: 1 })
    await send("Input.dispatchMouseEvent", { type: "mouseReleased", x: box.x, y: box.y, button: "left", clickCount: 1 })
  }

  return {
    pid: child.pid!,
    problems: () => [...problems],
    navigate: async (url) => {
      await send("Page.navigate", { url })
      await waitFor(`load ${url}`, `document.readyState === "complete" && location.href.startsWith(${JSON.stringify(url)})`)
    },
    evaluate,
    waitFor,
    click,
    type: async (text) => {
      await send("Input.insertText", { text })
    },
    setFiles: async (selector, files) => {
      const { root } = await send("DOM.getDocument", { depth: 0 }) as { root: { nodeId: number } }
      const { nodeId } = await send("DOM.querySelector", { nodeId: root.nodeId, selector }) as { nodeId: number }
      if (nodeId === 0) throw new Error(`no element ${selector}`)
      await send("DOM.setFileInputFiles", { nodeId, files: [...files] })
    },
    press: async (key) => {
      const named = NAMED_KEYS[key]
      const text = named === undefined ? key : named.text
      const base = {
        key,
        code: named?.code ?? "",
        windowsVirtualKeyCode: named?.keyCode ?? key.toUpperCase().charCodeAt(0),
        ...(text !== undefined ? { text, unmodifiedText: text } : {})
      }
      await send("Input.dispatchKeyEvent", { type: text !== undefined ? "keyDown" : "rawKeyDown", ...base })
      await send("Input.dispatchKeyEvent", { type: "keyUp", ...base })
    },
    dropFiles: async (selector, files) => {
      const { x, y } = await centre(selector)
      const data = { items: [], files: [...files], dragOperationsMask: 1 }
      for (const type of ["dragEnter", "dragOver", "drop"]) await send("Input.dispatchDragEvent", { type, x, y, data })
    },
    authenticate: async (username, password) => {
      credentials = { username, password }
      await send("Fetch.enable", { handleAuthRequests: true, patterns: [{ urlPattern: "*" }] })
    },
    setViewport: async ({ width, height, mobile }) => {
      await send("Emulation.setDeviceMetricsOverride", { width, height, deviceScaleFactor: mobile === true ? 3 : 1, mobile: mobile === true })
    },
    setColorScheme: async (scheme) => {
      await send("Emulation.setEmulatedMedia", { features: [{ name: "prefers-color-scheme", value: scheme }] })
    },
    screenshot: async (file) => {
      const { data } = await send("Page.captureScreenshot", { format: "png" }) as { data: string }
      Fs.writeFileSync(file, Buffer.from(data, "base64"))
    },
    close
  }
}
