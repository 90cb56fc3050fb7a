// The channel controls: which query parameters they send, and how the answer's channel is described.
// A new control (an SNR slider, a modulation menu) is one more entry in CONTROLS plus its element in index.html.
import { $ } from "./ui.js";

// id: the element; param: the query parameter; optional: left out of the request when empty;
// radio: sent only when the channel is a radio link (awgn, rayleigh).
const CONTROLS = [
  { id: "channel", param: "channel" },
  { id: "p", param: "p" },
  { id: "seed", param: "seed", optional: true },
  { id: "snr-db", param: "snr_db", radio: true },
  { id: "modulation", param: "modulation", radio: true },
  { id: "coherence", param: "coherence", radio: true },
  { id: "decisions", param: "decisions", radio: true },
];
const RADIO_LINKS = ["awgn", "rayleigh"];

function isRadio(kind) {
  return RADIO_LINKS.includes(kind);
}

// The request's channel parameters from the controls, then the overrides (e.g. a sweep's p).
export function channelParams(overrides = {}) {
  const params = {};
  const radio = isRadio(overrides.channel ?? $("channel").value);
  for (const control of CONTROLS) {
    if (control.radio && !radio) continue;
    const value = $(control.id).value.trim();
    if (!control.optional || value !== "") params[control.param] = value;
  }
  return { ...params, ...overrides };
}

// The channel a sweep over p runs over: the chosen binary one, BSC when none or a radio link is chosen.
export function sweepChannel() {
  const kind = $("channel").value;
  return kind === "none" || isRadio(kind) ? "bsc" : kind;
}

export function channelName(kind) {
  return kind === "none" ? "no channel" : kind.toUpperCase();
}

// One line for the answer's channel report.
export function describeChannel(channel, payloadBits) {
  if (channel.kind === "none") return "none: every bit arrives as sent";
  const seed = channel.seed === null || channel.seed === undefined ? "no seed" : `seed ${channel.seed}`;
  if (isRadio(channel.kind)) {
    const fading = channel.kind === "rayleigh" ? `, one fade per ${channel.coherence}` : "";
    const soft = channel.decisions === "soft" ? ` (${channel.soft_bits}-bit LLRs sent)` : "";
    return `${channel.kind.toUpperCase()} ${channel.modulation.toUpperCase()} at Eb/N0 = ${channel.snr_db} dB` +
      `${fading}, ${channel.decisions} decisions${soft} (${seed}): ${channel.symbols} symbols, ` +
      `${channel.flipped_bits} of ${payloadBits} bits wrong after a hard decision ` +
      `(closed-form BER ${Number(channel.p).toExponential(2)})`;
  }
  return `${channel.kind.toUpperCase()} p = ${channel.p} (${seed}): ${channel.flipped_bits} flipped, ` +
    `${channel.erased_bits} erased of ${payloadBits}`;
}

function showP() {
  $("p-value").textContent = Number($("p").value).toFixed(2);
}

function showRadio() {
  $("radio-link").hidden = !isRadio($("channel").value);
  $("snr-db-value").textContent = Number($("snr-db").value).toFixed(1);
}

export function setUpChannelControls() {
  $("p").addEventListener("input", showP);
  $("channel").addEventListener("change", showRadio);
  $("snr-db").addEventListener("input", showRadio);
  showP();
  showRadio();
}
