// Shared test values for the tracker tests (not a test file).
import { randomBytes } from "node:crypto"
import * as Bytes from "../../src/core/Bytes.ts"
import type { AnnounceRequest } from "../../src/tracker/Tracker.ts"
import * as TrackerLive from "../../src/tracker/TrackerLive.ts"
import * as UdpTransaction from "../../src/tracker/UdpTransaction.ts"

export const infoHash = (): Uint8Array => new Uint8Array(randomBytes(20))
export const peerId = (): Uint8Array => Bytes.concat([Bytes.encodeUtf8("-ET0001-"), new Uint8Array(randomBytes(12))])

export const request = (overrides: Partial<AnnounceRequest> & Pick<AnnounceRequest, "infoHash">): AnnounceRequest => ({
  peerId: peerId(),
  port: 6881,
  uploaded: 0,
  downloaded: 0,
  left: 1000,
  event: "started",
  numwant: 50,
  key: 0x1234abcd,
  ...overrides
})

/** The live tracker client bound to loopback, with short timeouts so failing tests fail fast. */
export const liveLayer = TrackerLive.layer({
  http: { timeout: "5 seconds" },
  udp: { bind4: "127.0.0.1", bind6: "::1", retransmit: UdpTransaction.retransmitSchedule("250 millis", 3) }
})
