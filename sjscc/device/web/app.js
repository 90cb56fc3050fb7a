// The device's page: a client of its REST API (POST v1/classify?include=bits, GET v1/model), no model logic.
// Plain ES modules, nothing loaded from elsewhere and no build step, so it works offline under the page's CSP
// (default-src 'self'). This module wires the parts: ui (shared), api (the REST calls), image (what to send),
// channel (the channel controls), answer (label, bits, latency), raster (the spikes), sweep (p from 0 to 0.5).
import { clearAnswer, showAnswer } from "./answer.js";
import { classify, fetchModel } from "./api.js";
import { channelParams, setUpChannelControls } from "./channel.js";
import { chosenImage, setUpImageInputs } from "./image.js";
import { clearRaster, drawRaster, redrawRaster } from "./raster.js";
import { clearSweep, redrawSweep, setUpSweep } from "./sweep.js";
import { $, clearError, percent, showError } from "./ui.js";

let model = null; // GET v1/model

async function onClassify(event) {
  event.preventDefault();
  const button = $("classify");
  button.disabled = true;
  document.body.setAttribute("aria-busy", "true");
  clearError();
  try {
    const image = chosenImage();
    const { answer, bytesDown } = await classify(image, channelParams({ include: "bits" }));
    showAnswer(answer, image, bytesDown);
    drawRaster(answer.bits, answer.channel);
  } catch (error) {
    clearAnswer();
    clearRaster();
    showError(error.message);
  } finally {
    button.disabled = false;
    document.body.removeAttribute("aria-busy");
  }
}

async function loadModel() {
  try {
    model = await fetchModel();
  } catch (error) {
    $("model-summary").textContent = `Model: unknown (${error.message})`;
    return;
  }
  const parts = [`Model ${model.model_id}`];
  if (model.backbone) parts.push(`${model.backbone} split at ${model.split}`);
  parts.push(`${model.codec} codec, T = ${model.timesteps}, latent ${model.latent_shape.join("×")}` +
    ` = ${model.payload_bits} bits per image`);
  const metrics = model.metrics || {};
  if (typeof metrics.clean_accuracy === "number") {
    parts.push(`clean accuracy ${percent(metrics.clean_accuracy)} on ${metrics.dataset} ${metrics.split}` +
      ` (${metrics.n_images} images)`);
  }
  if (model.train_channel && model.train_channel.kind) {
    parts.push(`trained on ${model.train_channel.kind.toUpperCase()} p = ${model.train_channel.p}`);
  }
  const code = model.channel_code;
  if (code && code.kind) {  // separate coding: the block is sent at the code's modulation
    parts.push(`${code.kind.toUpperCase()} + ${code.crc} at rate ${Number(code.rate).toFixed(3)}, ${code.modulation}`);
    if (code.modulation) $("modulation").value = code.modulation;
  }
  $("model-summary").textContent = parts.join(" · ");
}

function start() {
  setUpImageInputs(clearSweep); // the sweep belongs to the image it was run on
  setUpChannelControls();
  $("controls").addEventListener("submit", onClassify);
  setUpSweep(chosenImage, () => model);
  loadModel();
  let pending = null;
  window.addEventListener("resize", () => {
    clearTimeout(pending);
    pending = setTimeout(() => {
      redrawRaster();
      redrawSweep();
    }, 100);
  });
}

// A module runs after the document is parsed; wait only if it is still loading.
if (document.readyState === "loading") {
  document.addEventListener("DOMContentLoaded", start);
} else {
  start();
}
