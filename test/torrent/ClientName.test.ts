import { describe, expect, it } from "@effect/vitest"
import * as ClientName from "../../src/torrent/ClientName.ts"

const id = (text: string) => {
  const out = new Uint8Array(20).fill(0x41)
  for (let i = 0; i < text.length; i++) out[i] = text.charCodeAt(i)
  return out
}

describe("ClientName", () => {
  it("the handshake's v first, else the Azureus-style peer id, else nothing", () => {
    expect(ClientName.of("qBittorrent/4.6.0", id("-LT2080-"))).toBe("qBittorrent/4.6.0")
    expect(ClientName.of(" ", id("-LT2080-"))).toBe("libtorrent 2.0.8.0")
    expect(ClientName.of(undefined, id("-TR4000-"))).toBe("Transmission 4.0.0.0")
    expect(ClientName.of(undefined, id("-ET0100-"))).toBe("effect-torrent 0.1.0.0")
    expect(ClientName.of(undefined, id("-ZZ1234-"))).toBe("ZZ 1.2.3.4")
    expect(ClientName.of(undefined, id("-qB4A10-"))).toBe("qBittorrent 4.10.1.0")
    expect(ClientName.of(undefined, id("A2-1-36-0-"))).toBe("aria2 1.36.0")
    expect(ClientName.of(undefined, new Uint8Array(20))).toBe("")
    expect(ClientName.of(undefined, id("M4-3-6--"))).toBe("")
  })
})
