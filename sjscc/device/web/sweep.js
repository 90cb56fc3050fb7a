// The robustness sweep: the chosen image sent at p = 0 ... 0.5, its top-1 probability drawn over the bundle's
// accuracy curve (from the model card) for the same channel.
import { classify } from "./api.js";
import { channelParams, sweepChannel } from "./channel.js";
import { $, COLORS, canvasWidth, clearError, percent, showError } from "./ui.js";

const SWEEP_PS = [0, 0.05, 0.1, 0.15, 0.2, 0.25, 0.3, 0.35, 0.4, 0.45, 0.5];

let last = null; // the last drawing's inputs, redrawn when the width changes
let getImage = () => null;
let getModel = () => null;

function bundleCurve(model, kind) {
  if (!model || !Array.isArray(model.accuracy_curves)) return null;
  return model.accuracy_curves.find((curve) => curve.channel === kind) || null;
}

async function onSweep() {
  const button = $("run-sweep");
  button.disabled = true;
  clearError();
  const kind = sweepChannel();
  const points = [];
  try {
    for (const p of SWEEP_PS) {
      button.textContent = `Sending at p = ${p.toFixed(2)}…`;
      const { answer } = await classify(getImage(), channelParams({ channel: kind, p: String(p) }));
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

export function clearSweep() {
  const canvas = $("sweep");
  canvas.getContext("2d").clearRect(0, 0, canvas.width, canvas.height);
  canvas.setAttribute("aria-label", "No sweep yet");
  delete canvas.dataset.points;
  $("sweep-legend").replaceChildren();
  last = null;
}

export function redrawSweep() {
  if (last) drawSweep(...last);
}

// image(): the {blob, name} to send; model(): the model card, or null before it has loaded.
export function setUpSweep(image, model) {
  getImage = image;
  getModel = model;
  $("run-sweep").addEventListener("click", onSweep);
}

function drawSweep(kind, points) {
  last = [kind, points];
  const canvas = $("sweep");
  const curve = bundleCurve(getModel(), kind);
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
