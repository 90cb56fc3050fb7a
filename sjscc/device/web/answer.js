// The answer of one classify request: label, top-5, the bits' numbers and the latency bar.
import { describeChannel } from "./channel.js";
import { $, percent } from "./ui.js";

// The answer's latency_ms, split into parts that add up to its total: rpc includes the edge's compute.
const STAGES = [
  ["device_compute", "device compute", "#1f77b4"],
  ["pack", "pack", "#9467bd"],
  ["channel", "channel", "#f28e1c"],
  ["network", "network + edge queue", "#8c8c8c"],
  ["edge_compute", "edge compute", "#2ca02c"],
  ["other", "HTTP + rest", "#c7c7c7"],
];

export function clearAnswer() {
  $("result-label").textContent = "–";
  $("result-prob").textContent = "";
  $("result-top").replaceChildren();
  for (const id of ["bits-payload", "bits-shape", "bits-wire", "bits-file", "bits-ratio", "bits-http",
    "bits-channel", "bits-code", "raster-summary"]) {
    $(id).textContent = "–";
  }
  $("latency").replaceChildren();
  $("latency").setAttribute("aria-label", "No answer");
  $("latency-legend").replaceChildren();
}

// Separate coding (a bundle with a channel code): the code, its rate and whether the edge decoded the block.
export function describeCode(code) {
  if (!code) return "none (the codec's bits go on the link as they are)";
  const verdict = code.decoded ? "decoded (CRC ok)" : `not decoded (CRC failed: ${code.on_failure})`;
  return `${code.kind.toUpperCase()} + ${code.crc}, rate ${code.rate.toFixed(3)}: ${code.info_bits} bits in ` +
    `${code.coded_bits} coded bits, ${code.symbols} symbols · ${verdict}`;
}

function showTop(answer) {
  if (answer.label === null) {  // a coded block failed its CRC under the misclassify policy: no class
    $("result-label").textContent = "no label";
    $("result-prob").textContent = `the block failed its CRC · model ${answer.model_id}`;
    $("result-top").replaceChildren();
    return;
  }
  $("result-label").textContent = answer.label;
  $("result-prob").textContent = `${percent(answer.top[0].prob)} · model ${answer.model_id}`;
  $("result-top").replaceChildren(...answer.top.map((entry) => {
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
}

function showBits(bits, channel, image, bytesDown) {
  const fileBits = 8 * image.blob.size;
  $("bits-payload").textContent = `${bits.payload_bits} bits (${Math.ceil(bits.payload_bits / 8)} bytes)`;
  $("bits-payload").dataset.value = String(bits.payload_bits);
  $("bits-shape").textContent = `${bits.timesteps} × ${bits.latent_shape.join(" × ")}` +
    ` · firing rate ${bits.firing_rate.toFixed(3)}`;
  $("bits-wire").textContent = `${bits.wire_bytes} bytes of protobuf (payload + header fields)`;
  $("bits-file").textContent = `${image.blob.size.toLocaleString("en")} bytes = ${fileBits.toLocaleString("en")} bits`;
  $("bits-ratio").textContent = `${(fileBits / bits.payload_bits).toFixed(1)}× fewer bits than the file`;
  $("bits-http").textContent = `${image.blob.size.toLocaleString("en")} bytes of image up (plus the form), ` +
    `${bytesDown.toLocaleString("en")} bytes of JSON down (with the bits)`;
  $("bits-channel").textContent = describeChannel(channel, channel.code ? channel.code.coded_bits : bits.payload_bits);
  $("bits-code").textContent = describeCode(channel.code);
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

// image: the {blob, name} that was sent; bytesDown: the size of the JSON answer.
export function showAnswer(answer, image, bytesDown) {
  showTop(answer);
  showBits(answer.bits, answer.channel, image, bytesDown);
  showLatency(answer.latency_ms);
}
