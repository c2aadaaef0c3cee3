import { describe, expect, it } from "@effect/vitest"
import * as Either from "effect/Either"
import * as FastCheck from "effect/FastCheck"
import * as WebSeedUrl from "../../src/metainfo/WebSeedUrl.ts"

const layout = (isMultiFile: boolean, ...paths: ReadonlyArray<ReadonlyArray<string>>) => ({
  isMultiFile,
  files: paths.map((rawPath) => ({ rawPath }))
})

describe("WebSeedUrl", () => {
  it("single-file: the URL is the file; a trailing slash gets the name", () => {
    const l = layout(false, ["my file.iso"])
    expect(WebSeedUrl.fileUrl("http://h/x/file.iso", l, 0)).toBe("http://h/x/file.iso")
    expect(WebSeedUrl.fileUrl("http://h/x/", l, 0)).toBe("http://h/x/my%20file.iso")
  })

  it("multi-file: directory URL + name + path, each component encoded", () => {
    const l = layout(true, ["tor rent", "a #1", "100%.bin"], ["tor rent", "ünï", "q?x=1&y"])
    expect(WebSeedUrl.fileUrl("http://h/pub/", l, 0)).toBe("http://h/pub/tor%20rent/a%20%231/100%25.bin")
    expect(WebSeedUrl.fileUrl("http://h/pub", l, 1)).toBe("http://h/pub/tor%20rent/%C3%BCn%C3%AF/q%3Fx%3D1%26y")
  })

  it("components made of dots are escaped (no climbing out of the directory)", () => {
    expect(WebSeedUrl.encodeComponent("..")).toBe("%2E%2E")
    expect(WebSeedUrl.encodeComponent(".")).toBe("%2E")
    expect(WebSeedUrl.encodeComponent("a.b")).toBe("a.b")
  })

  it("only http and https bases", () => {
    expect(Either.isRight(WebSeedUrl.parseBase("http://127.0.0.1/x"))).toBe(true)
    expect(Either.isRight(WebSeedUrl.parseBase("https://example.org/"))).toBe(true)
    expect(Either.getLeft(WebSeedUrl.parseBase("ftp://example.org/")).pipe((l) => l._tag === "Some" && l.value.reason))
      .toBe("unsupported-scheme")
    expect(Either.getLeft(WebSeedUrl.parseBase("not a url")).pipe((l) => l._tag === "Some" && l.value.reason))
      .toBe("invalid-url")
  })

  it.prop("an encoded component is URL-safe, decodes back, and stays one path segment", [FastCheck.string({ unit: "grapheme", maxLength: 20 })], ([c]) => {
    const e = WebSeedUrl.encodeComponent(c)
    expect(e).toMatch(/^[A-Za-z0-9\-._~%]*$/)
    expect(decodeURIComponent(e)).toBe(c)
    const u = new URL(`http://h/base/${e}/end`)
    expect(u.pathname.split("/").length).toBe(4)
    expect(u.pathname.startsWith("/base/")).toBe(true)
  })

  it.prop("multi-file URLs: the path components decode back to the raw path", [
    FastCheck.array(FastCheck.string({ unit: "grapheme", minLength: 1, maxLength: 12 }), { minLength: 1, maxLength: 4 })
  ], ([path]) => {
    const url = new URL(WebSeedUrl.fileUrl("http://h/pub/", layout(true, path), 0))
    expect(url.pathname.split("/").slice(2).map(decodeURIComponent)).toEqual(path)
  })
})
