// The channel controls: which query parameters they send, and how the answer's channel is described.
// A new control (an SNR slider, a modulation menu) is one more entry in CONTROLS plus its element in index.html.
import { $ } from "./ui.js";

// id: the element; param: the query parameter; optional: left out of the request when empty.
const CONTROLS = [
  { id: "channel", param: "channel" },
  { id: "p", param: "p" },
  { id: "seed", param: "seed", optional: true },
];

// The request's channel parameters from the controls, then the overrides (e.g. a sweep's p).
export function channelParams(overrides = {}) {
  const params = {};
  for (const control of CONTROLS) {
    const value = $(control.id).value.trim();
    if (!control.optional || value !== "") params[control.param] = value;
  }
  return { ...params, ...overrides };
}

// The channel a sweep runs over: the chosen one, BSC when none is chosen.
export function sweepChannel() {
  return $("channel").value === "none" ? "bsc" : $("channel").value;
}

export function channelName(kind) {
  return kind === "none" ? "no channel" : kind.toUpperCase();
}

// One line for the answer's channel report.
export function describeChannel(channel, payloadBits) {
  if (channel.kind === "none") return "none: every bit arrives as sent";
  const seed = channel.seed === null || channel.seed === undefined ? "no seed" : `seed ${channel.seed}`;
  return `${channel.kind.toUpperCase()} p = ${channel.p} (${seed}): ${channel.flipped_bits} flipped, ` +
    `${channel.erased_bits} erased of ${payloadBits}`;
}

function showP() {
  $("p-value").textContent = Number($("p").value).toFixed(2);
}

export function setUpChannelControls() {
  $("p").addEventListener("input", showP);
  showP();
}
