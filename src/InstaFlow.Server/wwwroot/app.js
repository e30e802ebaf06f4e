// The page's behaviour: fills the size list from /api/model, sends the form to /api/generate/stream, shows the
// step progress and a Cancel button, errors from the API, and each result (images, seeds to reuse, stage timings,
// download links) at the top of the gallery; with a refiner (GET /api/refiner) each image gets a Refine button; with a
// ControlNet (/api/model's control_net) the form offers a control image and its scale.
"use strict";

const $ = (id) => document.getElementById(id);

function headers() {
  const h = { "Content-Type": "application/json", "Accept": "application/json" };
  const key = $("api-key").value.trim();
  if (key) h["Authorization"] = "Bearer " + key;
  return h;
}

function showError(message) {
  $("error").textContent = message;
  $("error").hidden = !message;
}

// API errors are JSON {error, field, reason}; anything else (a proxy page, a dropped connection) is reported as is.
async function errorText(response) {
  try {
    const body = await response.json();
    return body.error || response.statusText;
  } catch {
    return `${response.status} ${response.statusText}`;
  }
}

async function loadModel() {
  const response = await fetch("api/model", { headers: headers() });
  if (!response.ok) {
    showError("could not read the model: " + await errorText(response));
    return;
  }
  const m = await response.json();
  // the name carries what the server put on top of the weights, e.g. "sd15 (merge ..., lora x.safetensors x0.8, controlnet c)"
  $("model-name").textContent = m.name;
  $("control-row").hidden = !m.control_net;
  $("steps").value = m.default_steps;
  $("guidance").value = m.default_guidance;
  for (const s of m.sample_sizes) {
    const o = new Option(`${s.width}×${s.height}`, `${s.width}x${s.height}`);
    o.selected = s.width === m.default_width && s.height === m.default_height;
    $("size").add(o);
  }
}

let refiner = false;

async function loadRefiner() {
  const response = await fetch("api/refiner", { headers: headers() });
  if (response.ok) refiner = (await response.json()).available;
}

// A chosen file as base64 (without the data: prefix), or null.
function fileBase64(input) {
  const file = input.files[0];
  if (!file) return Promise.resolve(null);
  return new Promise((resolve, reject) => {
    const reader = new FileReader();
    reader.onload = () => resolve(reader.result.slice(reader.result.indexOf(",") + 1));
    reader.onerror = () => reject(reader.error);
    reader.readAsDataURL(file);
  });
}

async function readForm() {
  const [width, height] = $("size").value.split("x").map(Number);
  const body = {
    prompt: $("prompt").value,
    steps: Number($("steps").value),
    guidance: Number($("guidance").value),
    batch: Number($("batch").value),
    width,
    height,
  };
  // random seed: the server draws one and the result shows it; otherwise the typed seed
  if (!$("random").checked) body.seed = Number($("seed").value);
  const negative = $("negative").value;
  if (negative) body.negative_prompt = negative;
  const init = await fileBase64($("init-image"));
  if (init) {
    body.init_image = init;
    body.strength = Number($("strength").value);
    delete body.width; delete body.height; // the output takes the image's size
  }
  const control = $("control-row").hidden ? null : await fileBase64($("control-image"));
  if (control) {
    // with an init image too, the API answers that the two cannot be combined, and the page shows that
    body.control_image = control;
    body.control_scale = Number($("control-scale").value);
    delete body.width; delete body.height; // the output takes the control image's size
  }
  return body;
}

const timingText = (timings) => Object.entries(timings).map(([stage, s]) => `${stage} ${s.toFixed(3)} s`).join(", ");
const totalSeconds = (timings) => Object.entries(timings).filter(([stage]) => stage !== "queue").reduce((a, [, s]) => a + s, 0);

// Sends one image to /api/refine and shows the refined image with its own times next to the original.
async function refine(fig, b64, r, seed, button) {
  button.disabled = true;
  showError("");
  try {
    const body = { image: b64, prompt: r.prompt, seed };
    if (r.negative_prompt) body.negative_prompt = r.negative_prompt;
    const response = await fetch("api/refine", { method: "POST", headers: headers(), body: JSON.stringify(body) });
    if (!response.ok) { showError(await errorText(response)); return; }
    const out = await response.json();
    const img = new Image();
    img.src = "data:image/png;base64," + out.image;
    img.className = "refined";
    img.alt = "refined: " + r.prompt;
    const note = document.createElement("figcaption");
    note.className = "refine-time";
    note.textContent = `refined in ${totalSeconds(out.timings).toFixed(2)} s (${timingText(out.timings)})`;
    fig.append(img, note);
  } catch (e) {
    showError("the server did not answer: " + e.message);
  } finally {
    button.disabled = false;
  }
}

function showResult(r) {
  const card = document.createElement("article");
  card.className = "result";
  const images = document.createElement("div");
  images.className = "images";
  r.images.forEach((b64, i) => {
    const url = "data:image/png;base64," + b64;
    const fig = document.createElement("figure");
    const img = new Image();
    img.src = url;
    img.alt = r.prompt;
    img.title = `seed ${r.seeds[i]}`;
    const link = document.createElement("a");
    link.href = url;
    link.download = `instaflow-${r.seeds[i]}.png`;
    link.textContent = "download";
    const caption = document.createElement("figcaption");
    const seed = document.createElement("span");
    seed.className = "seed";
    seed.textContent = `seed ${r.seeds[i]}`;
    // reuse: put this seed in the form and turn the random seed off
    const reuse = document.createElement("button");
    reuse.type = "button";
    reuse.className = "reuse";
    reuse.textContent = "reuse seed";
    reuse.addEventListener("click", () => { $("random").checked = false; $("seed").disabled = false; $("seed").value = r.seeds[i]; });
    caption.append(seed, " · ", reuse, " · ", link);
    if (refiner) {
      const button = document.createElement("button");
      button.type = "button";
      button.className = "refine";
      button.textContent = "Refine";
      button.addEventListener("click", () => refine(fig, b64, r, r.seeds[i], button));
      caption.append(" · ", button);
    }
    fig.append(img, caption);
    images.append(fig);
  });
  const timings = timingText(r.timings);
  const params = document.createElement("p");
  params.className = "params";
  params.textContent = `${r.prompt}\n` + (r.negative_prompt ? `negative: ${r.negative_prompt}\n` : "") +
    `${r.width}×${r.height}, steps ${r.steps}, guidance ${r.guidance}, model ${r.model}`;
  const time = document.createElement("p");
  time.className = "time";
  time.textContent = `generated in ${totalSeconds(r.timings).toFixed(2)} s: ${timings}`;
  card.append(images, params, time);
  $("gallery").prepend(card);
}

// Server-sent events of /api/generate/stream: "step" updates the progress line, "result" adds the images.
async function readEvents(response) {
  const reader = response.body.pipeThrough(new TextDecoderStream()).getReader();
  let buffer = "";
  for (;;) {
    const { value, done } = await reader.read();
    if (done) break;
    buffer += value;
    let end;
    while ((end = buffer.indexOf("\n\n")) >= 0) {
      const block = buffer.slice(0, end);
      buffer = buffer.slice(end + 2);
      const name = /^event: (.*)$/m.exec(block)?.[1];
      const data = JSON.parse(/^data: (.*)$/m.exec(block)?.[1] ?? "null");
      if (name === "step") {
        $("step").textContent = `image ${data.image + 1}, step ${data.step}/${data.steps}`;
        const bar = document.querySelector("#progress progress");
        bar.max = data.steps;
        bar.value = data.step;
      }
      else if (name === "result") showResult(data);
      else if (name === "error") showError(data.error);
    }
  }
}

// The running request; Cancel aborts it, and the server drops an aborted job from its queue or stops it between steps.
let running = null;

async function generate(event) {
  event.preventDefault();
  showError("");
  $("generate").disabled = true;
  $("progress").hidden = false;
  running = new AbortController();
  $("step").textContent = "";
  document.querySelector("#progress progress").removeAttribute("value"); // indeterminate until the first step
  const started = performance.now();
  const timer = setInterval(() => { $("elapsed").textContent = ((performance.now() - started) / 1000).toFixed(1) + " s"; }, 100);
  try {
    const response = await fetch("api/generate/stream", { method: "POST", headers: headers(), body: JSON.stringify(await readForm()), signal: running.signal });
    if (response.ok) await readEvents(response);
    else showError(await errorText(response));
  } catch (e) {
    showError(e.name === "AbortError" ? "cancelled" : "the server did not answer: " + e.message);
  } finally {
    running = null;
    clearInterval(timer);
    $("generate").disabled = false;
    $("progress").hidden = true;
  }
}

$("random").addEventListener("change", () => { $("seed").disabled = $("random").checked; });
$("form").addEventListener("submit", generate);
$("cancel").addEventListener("click", () => running?.abort());
// With --api-key the first model request fails; entering the key loads the model's sizes.
$("api-key").addEventListener("change", () => {
  showError("");
  $("size").length = 0;
  loadModel().catch((e) => showError("the server did not answer: " + e.message));
loadRefiner().catch(() => {});
});
loadModel().catch((e) => showError("the server did not answer: " + e.message));
loadRefiner().catch(() => {});
