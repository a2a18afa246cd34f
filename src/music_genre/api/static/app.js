// The page's only script: fills the model list, posts the upload, draws the answer.
"use strict";

const $ = (id) => document.getElementById(id);

// "grouped CV 88 % · test 85 %": the ranking's honest figure first (GET /models)
function figures(m) {
  const f = m.figures || {};
  const pct = (x) => `${(100 * x.accuracy).toFixed(0)} %`;
  const parts = [];
  if (f.grouped) parts.push(`grouped CV ${pct(f.grouped)}`);
  if (f.holdout) parts.push(`other artists ${pct(f.holdout)}`);
  const split = f.split || (m.metrics && m.metrics.accuracy != null ? m.metrics : null);
  if (split) parts.push(`test ${pct(split)}`);
  return parts.length ? ` (${parts.join(" · ")})` : "";
}

async function loadModels() {
  const select = $("model");
  const response = await fetch("models");
  const body = await response.json();
  for (const m of body.models) {
    const option = document.createElement("option");
    option.value = m.name;
    option.textContent = m.available ? m.name + figures(m) : `${m.name} (not trained)`;
    option.disabled = !m.available;
    option.selected = m.default;
    select.appendChild(option);
  }
  const note = $("default-note");
  if (note) note.textContent = `default: ${body.default_model} (chosen by ${body.default_chosen_by})`;
}

function drawChart(probabilities, top) {
  const chart = $("chart");
  chart.replaceChildren();
  const entries = Object.entries(probabilities).sort((a, b) => b[1] - a[1]);
  for (const [genre, p] of entries) {
    const isTop = genre === top ? " top" : "";
    const label = document.createElement("div");
    label.className = "label" + isTop;
    label.textContent = genre;
    const track = document.createElement("div");
    track.className = "track" + isTop;
    track.dataset.genre = genre;
    const bar = document.createElement("div");
    bar.className = "bar";
    bar.style.width = `${(100 * p).toFixed(1)}%`;
    track.appendChild(bar);
    const value = document.createElement("div");
    value.className = "value" + isTop;
    value.textContent = `${(100 * p).toFixed(1)} %`;
    chart.append(label, track, value);
  }
}

// viridis, sampled at five points and interpolated
const STOPS = [[68, 1, 84], [59, 82, 139], [33, 145, 140], [94, 201, 98], [253, 231, 37]];
function colour(v) {
  const x = (v / 255) * (STOPS.length - 1);
  const i = Math.min(Math.floor(x), STOPS.length - 2);
  const t = x - i;
  return STOPS[i].map((c, k) => Math.round(c + t * (STOPS[i + 1][k] - c)));
}

function drawSpectrogram(spec) {
  const canvas = $("spectrogram");
  canvas.width = spec.n_columns;
  canvas.height = spec.n_mels;
  const bytes = Uint8Array.from(atob(spec.data), (c) => c.charCodeAt(0));
  const ctx = canvas.getContext("2d");
  const image = ctx.createImageData(spec.n_columns, spec.n_mels);
  for (let row = 0; row < spec.n_mels; row++) {
    const y = spec.n_mels - 1 - row; // low frequencies at the bottom
    for (let col = 0; col < spec.n_columns; col++) {
      const [r, g, b] = colour(bytes[row * spec.n_columns + col]);
      const o = 4 * (y * spec.n_columns + col);
      image.data.set([r, g, b, 255], o);
    }
  }
  ctx.putImageData(image, 0, 0);
  $("spectrogram-caption").textContent =
    `Mel spectrogram of the first ${spec.seconds.toFixed(1)} s (low frequencies at the bottom)`;
}

async function predict(event) {
  event.preventDefault();
  const file = $("file").files[0];
  $("error").textContent = "";
  if (!file) { $("error").textContent = "Choose an audio file first."; return; }
  const form = new FormData();
  form.append("file", file);
  form.append("model", $("model").value);
  $("status").textContent = "analysing…";
  $("predict").disabled = true;
  try {
    const response = await fetch("predict?spectrogram=true", { method: "POST", body: form });
    const body = await response.json();
    if (!response.ok) throw new Error(body.error || `HTTP ${response.status}`);
    $("genre").textContent = `${body.genre} — ${(100 * body.probabilities[body.genre]).toFixed(1)} %`;
    $("genre").dataset.genre = body.genre;
    $("meta").textContent = `model ${body.model} (version ${body.version}), ` +
      `${body.duration_s.toFixed(1)} s of audio, ${body.windows} window(s), ` +
      `${body.seconds.toFixed(2)} s on the server`;
    drawChart(body.probabilities, body.genre);
    if (body.spectrogram) drawSpectrogram(body.spectrogram);
    $("result").hidden = false;
    $("status").textContent = "";
  } catch (err) {
    $("result").hidden = true;
    $("status").textContent = "";
    $("error").textContent = err.message;
  } finally {
    $("predict").disabled = false;
  }
}

$("form").addEventListener("submit", predict);
loadModels().catch((err) => { $("error").textContent = `Could not list the models: ${err}`; });
