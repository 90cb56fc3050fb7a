// The device's page: a client of its REST API (POST v1/classify?include=bits, GET v1/model), no model logic.
// Plain JavaScript, nothing loaded from elsewhere, so it works offline.
"use strict";

(() => {
  const $ = (id) => document.getElementById(id);
  const SWEEP_PS = [0, 0.05, 0.1, 0.15, 0.2, 0.25, 0.3, 0.35, 0.4, 0.45, 0.5];
  // The answer's latency_ms, split into parts that add up to its total: rpc includes the edge's compute.
  const STAGES = [
    ["device_compute", "device compute", "#1f77b4"],
    ["pack", "pack", "#9467bd"],
    ["channel", "channel", "#f28e1c"],
    ["network", "network + edge queue", "#8c8c8c"],
    ["edge_compute", "edge compute", "#2ca02c"],
    ["other", "HTTP + rest", "#c7c7c7"],
  ];
  const COLORS = { spike: "#1f3a93", silent: "#e8ecf4", flipped: "#d62728", erased: "#f28e1c", grid: "#d0d7de",
    ink: "#1b1f24", muted: "#57606a", accent: "#0b5cad" };

  let chosen = null; // {blob, name}: the image to send
  let model = null; // GET v1/model
  let previewUrl = null;
  const drawn = { raster: null, sweep: null }; // the last drawings' inputs, redrawn when the width changes

  // ---- errors -------------------------------------------------------------------------------------------
  function showError(message) {
    const box = $("error");
    box.textContent = message;
    box.hidden = false;
  }

  function clearError() {
    $("error").hidden = true;
    $("error").textContent = "";
  }

  async function errorOf(response) {
    // The API's answer to a failure is {"detail": "..."}; say it as it is.
    const text = await response.text();
    let detail = text;
    try {
      const body = JSON.parse(text);
      if (body && body.detail !== undefined) {
        detail = typeof body.detail === "string" ? body.detail : JSON.stringify(body.detail);
      }
    } catch (_) {
      // not JSON: keep the text
    }
    return `HTTP ${response.status}: ${detail || response.statusText}`;
  }

  // ---- the image ----------------------------------------------------------------------------------------
  function choose(blob, name) {
    chosen = { blob, name };
    if (previewUrl) URL.revokeObjectURL(previewUrl);
    previewUrl = URL.createObjectURL(blob);
    const preview = $("preview");
    preview.src = previewUrl;
    preview.alt = `The chosen image, ${name}`;
    preview.hidden = false;
    $("image-name").textContent = `${name} (${blob.size.toLocaleString("en")} bytes)`;
    for (const button of document.querySelectorAll(".sample")) {
      button.setAttribute("aria-pressed", String(button.dataset.name === name));
    }
    clearError();
    clearSweep(); // the sweep belongs to the image it was run on
  }

  async function chooseSample(button) {
    try {
      const response = await fetch(button.dataset.src);
      if (!response.ok) throw new Error(await errorOf(response));
      choose(await response.blob(), button.dataset.name);
    } catch (error) {
      showError(`could not load the sample image: ${error.message}`);
    }
  }

  function setUpImageInputs() {
    $("image-input").addEventListener("change", (event) => {
      const file = event.target.files[0];
      if (file) choose(file, file.name);
    });
    for (const button of document.querySelectorAll(".sample")) {
      button.setAttribute("aria-pressed", "false");
      button.addEventListener("click", () => chooseSample(button));
    }
    const zone = $("drop-zone");
    const target = $("controls");
    target.addEventListener("dragover", (event) => {
      event.preventDefault();
      zone.classList.add("dragging");
    });
    target.addEventListener("dragleave", () => zone.classList.remove("dragging"));
    target.addEventListener("drop", (event) => {
      event.preventDefault();
      zone.classList.remove("dragging");
      const file = event.dataTransfer.files[0];
      if (file) choose(file, file.name);
    });
  }

  // ---- the request --------------------------------------------------------------------------------------
  function channelParams(overrides = {}) {
    const params = { channel: $("channel").value, p: $("p").value, ...overrides };
    const seed = $("seed").value.trim();
    if (seed !== "") params.seed = seed;
    return params;
  }

  async function classify(params) {
    if (!chosen) throw new Error("Choose an image first: upload one, drop one here, or pick a sample.");
    const form = new FormData();
    form.append("image", chosen.blob, chosen.name);
    let response;
    try {
      response = await fetch(`v1/classify?${new URLSearchParams(params)}`, { method: "POST", body: form });
    } catch (error) {
      throw new Error(`could not reach the device: ${error.message}`);
    }
    if (!response.ok) throw new Error(await errorOf(response));
    const text = await response.text();
    return { answer: JSON.parse(text), bytesDown: new TextEncoder().encode(text).length };
  }

  async function onClassify(event) {
    event.preventDefault();
    const button = $("classify");
    button.disabled = true;
    document.body.setAttribute("aria-busy", "true");
    clearError();
    try {
      const { answer, bytesDown } = await classify(channelParams({ include: "bits" }));
      showAnswer(answer, bytesDown);
    } catch (error) {
      clearAnswer();
      showError(error.message);
    } finally {
      button.disabled = false;
      document.body.removeAttribute("aria-busy");
    }
  }

  // ---- the answer ---------------------------------------------------------------------------------------
  function percent(x, digits = 1) {
    return `${(100 * x).toFixed(digits)} %`;
  }

  function clearAnswer() {
    $("result-label").textContent = "–";
    $("result-prob").textContent = "";
    $("result-top").replaceChildren();
    for (const id of ["bits-payload", "bits-shape", "bits-wire", "bits-file", "bits-ratio", "bits-http",
      "bits-channel", "raster-summary"]) {
      $(id).textContent = "–";
    }
    $("latency").replaceChildren();
    $("latency").setAttribute("aria-label", "No answer");
    $("latency-legend").replaceChildren();
    const raster = $("raster");
    raster.getContext("2d").clearRect(0, 0, raster.width, raster.height);
    raster.setAttribute("aria-label", "No bits");
    drawn.raster = null;
    for (const key of ["flipped", "erased", "ones", "bits"]) delete raster.dataset[key];
  }

  function showAnswer(answer, bytesDown) {
    const top1 = answer.top[0];
    $("result-label").textContent = answer.label;
    $("result-prob").textContent = `${percent(top1.prob)} · model ${answer.model_id}`;
    const list = $("result-top");
    list.replaceChildren(...answer.top.map((entry) => {
      const item = document.createElement("li");
      const name = document.createElement("span");
      name.textContent = entry.label;
      const bar = document.createElement("span");
      bar.className = "bar";
      const fill = document.createElement("span");
      fill.style.width = `${Math.max(0, Math.min(100, 100 * entry.prob))}%`;
      bar.append(fill);
      const prob = document.createElement("span");
      prob.className = "prob";
      prob.textContent = percent(entry.prob);
      item.append(name, bar, prob);
      return item;
    }));

    const bits = answer.bits;
    const channel = answer.channel;
    const fileBits = 8 * chosen.blob.size;
    $("bits-payload").textContent = `${bits.payload_bits} bits (${Math.ceil(bits.payload_bits / 8)} bytes)`;
    $("bits-payload").dataset.value = String(bits.payload_bits);
    $("bits-shape").textContent = `${bits.timesteps} × ${bits.latent_shape.join(" × ")}` +
      ` · firing rate ${bits.firing_rate.toFixed(3)}`;
    $("bits-wire").textContent = `${bits.wire_bytes} bytes of protobuf (payload + header fields)`;
    $("bits-file").textContent = `${chosen.blob.size.toLocaleString("en")} bytes = ${fileBits.toLocaleString("en")} bits`;
    $("bits-ratio").textContent = `${(fileBits / bits.payload_bits).toFixed(1)}× fewer bits than the file`;
    $("bits-http").textContent = `${chosen.blob.size.toLocaleString("en")} bytes of image up (plus the form), ` +
      `${bytesDown.toLocaleString("en")} bytes of JSON down (with the bits)`;
    const seed = channel.seed === null || channel.seed === undefined ? "no seed" : `seed ${channel.seed}`;
    $("bits-channel").textContent = channel.kind === "none" ? "none: every bit arrives as sent"
      : `${channel.kind.toUpperCase()} p = ${channel.p} (${seed}): ${channel.flipped_bits} flipped, ` +
        `${channel.erased_bits} erased of ${bits.payload_bits}`;

    showLatency(answer.latency_ms);
    drawRaster(bits, channel);
  }

  function showLatency(latency) {
    const parts = {
      device_compute: latency.device_compute,
      pack: latency.pack,
      channel: latency.channel || 0,
      network: Math.max(0, latency.rpc - latency.edge_compute),
      edge_compute: latency.edge_compute,
    };
    const known = Object.values(parts).reduce((a, b) => a + b, 0);
    parts.other = Math.max(0, latency.total - known);
    const total = Math.max(latency.total, known);
    const bar = $("latency");
    const legend = $("latency-legend");
    bar.replaceChildren();
    legend.replaceChildren();
    for (const [key, name, color] of STAGES) {
      const ms = parts[key];
      const segment = document.createElement("span");
      segment.style.width = `${(100 * ms) / total}%`;
      segment.style.background = color;
      segment.title = `${name}: ${ms.toFixed(1)} ms`;
      bar.append(segment);
      const item = document.createElement("li");
      const swatch = document.createElement("i");
      swatch.style.background = color;
      item.append(swatch, `${name} ${ms.toFixed(1)} ms`);
      legend.append(item);
    }
    bar.setAttribute("aria-label", `Latency ${latency.total.toFixed(1)} ms in total: ` +
      STAGES.map(([key, name]) => `${name} ${parts[key].toFixed(1)} ms`).join(", "));
    bar.dataset.total = String(latency.total);
  }

  // ---- the raster ---------------------------------------------------------------------------------------
  function bitsOf(base64, count) {
    // Packed row-major, most significant bit first (sjscc.common.bitstream).
    const bytes = Uint8Array.from(atob(base64), (c) => c.charCodeAt(0));
    const bits = new Uint8Array(count);
    for (let i = 0; i < count; i += 1) bits[i] = (bytes[i >> 3] >> (7 - (i & 7))) & 1;
    return bits;
  }

  function canvasWidth(canvas) {
    return Math.max(240, Math.floor(canvas.parentElement.clientWidth || 640));
  }

  function drawRaster(bits, channel) {
    drawn.raster = [bits, channel];
    const raster = $("raster");
    const count = bits.payload_bits;
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
      `${channel.kind === "none" ? "no channel" : channel.kind.toUpperCase()}.`;
    $("raster-summary").textContent = summary;
    raster.setAttribute("aria-label", `Spike raster: ${summary}`);
  }

  // ---- the sweep ----------------------------------------------------------------------------------------
  function bundleCurve(kind) {
    if (!model || !Array.isArray(model.accuracy_curves)) return null;
    return model.accuracy_curves.find((curve) => curve.channel === kind) || null;
  }

  async function onSweep() {
    const button = $("run-sweep");
    button.disabled = true;
    clearError();
    const kind = $("channel").value === "none" ? "bsc" : $("channel").value;
    const points = [];
    try {
      for (const p of SWEEP_PS) {
        button.textContent = `Sending at p = ${p.toFixed(2)}…`;
        const { answer } = await classify(channelParams({ channel: kind, p: String(p) }));
        points.push({ p, label: answer.label, prob: answer.top[0].prob, flipped: answer.channel.flipped_bits,
          erased: answer.channel.erased_bits });
      }
      drawSweep(kind, points);
    } catch (error) {
      showError(error.message);
    } finally {
      button.disabled = false;
      button.textContent = "Run the sweep";
    }
  }

  function clearSweep() {
    const canvas = $("sweep");
    canvas.getContext("2d").clearRect(0, 0, canvas.width, canvas.height);
    canvas.setAttribute("aria-label", "No sweep yet");
    delete canvas.dataset.points;
    $("sweep-legend").replaceChildren();
    drawn.sweep = null;
  }

  function drawSweep(kind, points) {
    drawn.sweep = [kind, points];
    const canvas = $("sweep");
    const curve = bundleCurve(kind);
    const clean = points[0].label;
    canvas.dataset.points = JSON.stringify(points);
    const width = Math.min(canvasWidth(canvas), 760);
    const height = Math.round(Math.max(200, Math.min(300, width * 0.5)));
    const ratio = window.devicePixelRatio || 1;
    canvas.width = Math.round(width * ratio);
    canvas.height = Math.round(height * ratio);
    canvas.style.width = `${width}px`;
    const context = canvas.getContext("2d");
    context.setTransform(ratio, 0, 0, ratio, 0, 0);
    context.clearRect(0, 0, width, height);
    const box = { left: 44, right: width - 12, top: 12, bottom: height - 36 };
    const pMax = Math.max(0.5, ...(curve ? curve.points.map((point) => point.p) : []));
    const x = (p) => box.left + ((box.right - box.left) * p) / pMax;
    const y = (v) => box.bottom - (box.bottom - box.top) * v;

    context.font = "12px system-ui, sans-serif";
    context.strokeStyle = COLORS.grid;
    context.fillStyle = COLORS.muted;
    context.lineWidth = 1;
    context.textAlign = "right";
    context.textBaseline = "middle";
    for (let v = 0; v <= 1.0001; v += 0.25) {
      context.beginPath();
      context.moveTo(box.left, y(v));
      context.lineTo(box.right, y(v));
      context.stroke();
      context.fillText(v.toFixed(2), box.left - 6, y(v));
    }
    context.textAlign = "center";
    context.textBaseline = "top";
    const step = pMax > 0.5 || width < 500 ? 0.1 : 0.05;
    for (let p = 0; p <= pMax + 1e-9; p += step) {
      context.fillText(p.toFixed(2).replace(/0$/, ""), x(p), box.bottom + 6);
    }
    context.fillText(`p (${kind.toUpperCase()})`, (box.left + box.right) / 2, box.bottom + 20);

    if (curve) {
      context.strokeStyle = COLORS.muted;
      context.setLineDash([6, 4]);
      context.lineWidth = 2;
      context.beginPath();
      curve.points.forEach((point, index) => {
        const draw = index === 0 ? context.moveTo : context.lineTo;
        draw.call(context, x(point.p), y(point.accuracy_mean));
      });
      context.stroke();
      context.setLineDash([]);
    }
    context.strokeStyle = COLORS.accent;
    context.lineWidth = 2;
    context.beginPath();
    points.forEach((point, index) => {
      const draw = index === 0 ? context.moveTo : context.lineTo;
      draw.call(context, x(point.p), y(point.prob));
    });
    context.stroke();
    for (const point of points) {
      context.beginPath();
      context.arc(x(point.p), y(point.prob), 4.5, 0, 2 * Math.PI);
      context.fillStyle = point.label === clean ? COLORS.accent : "#ffffff";
      context.strokeStyle = point.label === clean ? COLORS.accent : COLORS.flipped;
      context.fill();
      context.stroke();
    }

    const legend = $("sweep-legend");
    const entries = [[COLORS.accent, "", `top-1 probability for this image (filled: still "${clean}"; ` +
      "red ring: another label)"]];
    if (curve) {
      entries.push([COLORS.muted, "dashed", `the bundle's accuracy on ${curve.dataset || "its"} ${curve.split || ""}` +
        ` (${curve.n_images || "?"} images, ${curve.source})`]);
    } else {
      entries.push([COLORS.muted, "dashed", `no accuracy curve for ${kind.toUpperCase()} ships with this bundle`]);
    }
    legend.replaceChildren(...entries.map(([color, style, text]) => {
      const item = document.createElement("li");
      const swatch = document.createElement("i");
      if (style) {
        swatch.className = style;
        swatch.style.borderColor = color;
      } else {
        swatch.style.background = color;
      }
      item.append(swatch, text);
      return item;
    }));
    const changed = points.filter((point) => point.label !== clean).map((point) => point.p);
    canvas.setAttribute("aria-label", `Sweep over ${kind.toUpperCase()} p: ` + points.map(
      (point) => `p ${point.p}: ${point.label} ${percent(point.prob)}`).join("; ") +
      (changed.length ? `. The label changes at p = ${changed.join(", ")}.` : ". The label never changes."));
  }

  // ---- the model ----------------------------------------------------------------------------------------
  async function loadModel() {
    try {
      const response = await fetch("v1/model");
      if (!response.ok) throw new Error(await errorOf(response));
      model = await response.json();
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
    $("model-summary").textContent = parts.join(" · ");
  }

  // ---- wiring -------------------------------------------------------------------------------------------
  function showP() {
    $("p-value").textContent = Number($("p").value).toFixed(2);
  }

  document.addEventListener("DOMContentLoaded", () => {
    setUpImageInputs();
    $("p").addEventListener("input", showP);
    showP();
    $("controls").addEventListener("submit", onClassify);
    $("run-sweep").addEventListener("click", onSweep);
    loadModel();
    let pending = null;
    window.addEventListener("resize", () => {
      clearTimeout(pending);
      pending = setTimeout(() => {
        if (drawn.raster) drawRaster(...drawn.raster);
        if (drawn.sweep) drawSweep(...drawn.sweep);
      }, 100);
    });
  });
})();
