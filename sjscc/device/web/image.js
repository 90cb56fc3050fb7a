// The image to send: an upload, a dropped file or a sample, with its preview.
import { fetchBlob } from "./api.js";
import { $, clearError, showError } from "./ui.js";

let chosen = null; // {blob, name}
let previewUrl = null;
let onChange = () => {};

export function chosenImage() {
  return chosen;
}

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
  onChange();
}

async function chooseSample(button) {
  try {
    choose(await fetchBlob(button.dataset.src), button.dataset.name);
  } catch (error) {
    showError(`could not load the sample image: ${error.message}`);
  }
}

// changed: called after each new choice (the sweep belongs to the image it was run on).
export function setUpImageInputs(changed) {
  onChange = changed;
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
