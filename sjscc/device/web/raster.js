// The spike raster: the bits sent, one row per time step, with the channel's flips and erasures marked.
import { channelName } from "./channel.js";
import { $, COLORS, canvasWidth, percent } from "./ui.js";

let last = null; // the last drawing's inputs, redrawn when the width changes

// Packed row-major, most significant bit first (sjscc.common.bitstream).
function bitsOf(base64, count) {
  const bytes = Uint8Array.from(atob(base64), (c) => c.charCodeAt(0));
  const bits = new Uint8Array(count);
  for (let i = 0; i < count; i += 1) bits[i] = (bytes[i >> 3] >> (7 - (i & 7))) & 1;
  return bits;
}

export function clearRaster() {
  const raster = $("raster");
  raster.getContext("2d").clearRect(0, 0, raster.width, raster.height);
  raster.setAttribute("aria-label", "No bits");
  last = null;
  for (const key of ["flipped", "erased", "ones", "bits"]) delete raster.dataset[key];
}

export function redrawRaster() {
  if (last) drawRaster(...last);
}

// bits: the answer's bits (include=bits: sent, received, erased as base64); channel: the answer's channel.
export function drawRaster(bits, channel) {
  last = [bits, channel];
  const raster = $("raster");
  const count = channel.code ? channel.code.coded_bits : bits.payload_bits;  // a coded block: its n bits
  const rows = bits.timesteps;
  const columns = count / rows;
  const sent = bitsOf(bits.sent, count);
  const received = bitsOf(bits.received, count);
  const erased = bits.erased ? bitsOf(bits.erased, count) : new Uint8Array(count);
  const flippedAt = [];
  const erasedAt = [];
  let ones = 0;
  for (let i = 0; i < count; i += 1) {
    ones += sent[i];
    if (sent[i] !== received[i]) flippedAt.push(i);
    if (erased[i]) erasedAt.push(i);
  }
  // What is marked, for people (the summary) and for tests (data attributes).
  raster.dataset.bits = String(count);
  raster.dataset.ones = String(ones);
  raster.dataset.flipped = flippedAt.join(",");
  raster.dataset.erased = erasedAt.join(",");

  const labelWidth = 30;
  const width = canvasWidth(raster);
  // At least 4 px a bit: a long payload scrolls sideways in its box rather than shrinking out of sight.
  const cell = Math.max(4, Math.floor((width - labelWidth) / columns));
  const cellHeight = Math.max(cell, 12);
  const ratio = window.devicePixelRatio || 1;
  raster.width = Math.round((labelWidth + cell * columns) * ratio);
  raster.height = Math.round(cellHeight * rows * ratio);
  raster.style.width = `${labelWidth + cell * columns}px`;
  const context = raster.getContext("2d");
  context.setTransform(ratio, 0, 0, ratio, 0, 0);
  context.clearRect(0, 0, labelWidth + cell * columns, cellHeight * rows);
  context.font = "11px system-ui, sans-serif";
  context.textBaseline = "middle";
  const gap = cell >= 4 ? 1 : 0;
  for (let t = 0; t < rows; t += 1) {
    if (cellHeight >= 10 || t % 2 === 0) {
      context.fillStyle = COLORS.muted;
      context.fillText(`t${t + 1}`, 2, t * cellHeight + cellHeight / 2);
    }
    for (let j = 0; j < columns; j += 1) {
      const i = t * columns + j;
      const x = labelWidth + j * cell;
      const y = t * cellHeight;
      context.fillStyle = sent[i] ? COLORS.spike : COLORS.silent;
      context.fillRect(x, y, cell - gap, cellHeight - gap);
      if (erased[i]) {
        context.fillStyle = COLORS.erased;
        context.fillRect(x, y, cell - gap, cellHeight - gap);
      }
      if (sent[i] !== received[i]) {
        // Flipped: red; an erased bit read wrong keeps an orange rim.
        context.fillStyle = COLORS.flipped;
        const inset = erased[i] && cell >= 5 ? 2 : 0;
        context.fillRect(x + inset, y + inset, cell - gap - 2 * inset, cellHeight - gap - 2 * inset);
      }
    }
  }
  const summary = `${count} bits = ${rows} steps × ${columns} latent elements; ${ones} spikes sent ` +
    `(${percent(ones / count)}); ${flippedAt.length} flipped, ${erasedAt.length} erased by ` +
    `${channelName(channel.kind)}.`;
  $("raster-summary").textContent = summary;
  raster.setAttribute("aria-label", `Spike raster: ${summary}`);
}
