// What every part of the page shares: element lookup, the colours, number formats and the error box.

export const $ = (id) => document.getElementById(id);

export const COLORS = { spike: "#1f3a93", silent: "#e8ecf4", flipped: "#d62728", erased: "#f28e1c", grid: "#d0d7de",
  ink: "#1b1f24", muted: "#57606a", accent: "#0b5cad" };

export function percent(x, digits = 1) {
  return `${(100 * x).toFixed(digits)} %`;
}

export function showError(message) {
  const box = $("error");
  box.textContent = message;
  box.hidden = false;
}

export function clearError() {
  $("error").hidden = true;
  $("error").textContent = "";
}

// A canvas as wide as its box (at least 240 px), so drawings follow the window.
export function canvasWidth(canvas) {
  return Math.max(240, Math.floor(canvas.parentElement.clientWidth || 640));
}
