// Stub: WebRTC is not available. bittorrent-tracker's server never touches it.
export default {}
