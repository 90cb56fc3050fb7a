// The device's REST API as the page uses it (POST v1/classify, GET v1/model, the sample files); no DOM here.

// The API's answer to a failure is {"detail": "..."}; say it as it is.
export async function errorOf(response) {
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

// POST the image with the query params; returns the answer and the size of the JSON that came back.
export async function classify(image, params) {
  if (!image) throw new Error("Choose an image first: upload one, drop one here, or pick a sample.");
  const form = new FormData();
  form.append("image", image.blob, image.name);
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

// The model card: what the bundle is and the accuracy curves that ship with it.
export async function fetchModel() {
  const response = await fetch("v1/model");
  if (!response.ok) throw new Error(await errorOf(response));
  return response.json();
}

export async function fetchBlob(url) {
  const response = await fetch(url);
  if (!response.ok) throw new Error(await errorOf(response));
  return response.blob();
}
