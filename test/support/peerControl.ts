/**
 * A fake `PeerControl` (what a torrent's handle drives a peer session with) for unit tests: every command a no-op,
 * extended messages recorded; `overrides` replace single commands.
 */
import type { PeerControl } from "../../src/peer/TorrentHandle.ts"

export const recordingControl = (overrides: Partial<PeerControl> = {}) => {
  const sent: Array<{ id: number; payload: Uint8Array }> = []
  const c: PeerControl = {
    sendHave: () => {},
    setInterested: () => {},
    requestMore: () => {},
    cancel: () => {},
    choke: () => {},
    unchoke: () => {},
    sendBlock: () => false,
    reject: () => {},
    sendExtended: (id, payload) => void sent.push({ id, payload }),
    allowFast: () => {},
    pauseReading: () => {},
    resumeReading: () => {},
    close: () => {},
    ...overrides
  }
  return { c, sent }
}
