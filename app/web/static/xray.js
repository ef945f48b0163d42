// The X-ray page: POST /analyze for one layer and unit, then the input coloured by the chosen value.
import { h, postJSON, showError } from "./api.js";

const $ = (id) => document.getElementById(id);
const SIGNAL_NAMES = {
  i: "input gate i", f: "forget gate f", g: "candidate g", o: "output gate o", c: "cell c",
  h: "output h", k: "time gate k(t)", surprisal: "surprisal (bits)", entropy: "entropy (bits)",
  confidence: "p(prediction)",
};
const IN_UNIT_INTERVAL = new Set(["i", "f", "o", "k", "confidence"]);  // values in [0, 1]
let result = null;  // the latest answer of POST /analyze

// The series (one value per position, null where there is none) that `signal` colours by.
function series(signal) {
  if (signal === "surprisal") return result.text.surprisal_bits;
  if (signal === "entropy") return result.text.entropy_bits;
  if (signal === "confidence") {
    return result.digits.predictions.map((d, n) => result.digits.probabilities[n][d]);
  }
  return result.layers[0].signals[signal][0];
}

// A background colour: red for positive values, blue for negative, stronger as |value| grows.
function colour(signal, value, scale) {
  if (value === null) return "transparent";
  const strength = Math.min(1, Math.abs(value) / scale);
  const rgb = value < 0 ? "31, 119, 180" : (signal === "surprisal" || signal === "entropy" ? "255, 127, 14" : "214, 39, 40");
  return `rgba(${rgb}, ${strength.toFixed(3)})`;
}

function scaleOf(signal, values) {
  if (IN_UNIT_INTERVAL.has(signal) || signal === "g" || signal === "h") return 1;
  const largest = Math.max(...values.filter((v) => v !== null).map(Math.abs));
  return largest > 0 ? largest : 1;  // c, surprisal and entropy: the largest in this input
}

function describe(n, signal, value) {
  const token = JSON.stringify(result.tokens[n]);
  const shown = value === null ? "none (no context yet)" : value.toFixed(4);
  return `position ${n} ${token}: ${SIGNAL_NAMES[signal]} = ${shown}`;
}

function renderText(signal) {
  const values = series(signal);
  const scale = scaleOf(signal, values);
  $("xray-text").replaceChildren(...result.tokens.map((token, n) => h("span", {
    "data-pos": n,
    title: describe(n, signal, values[n]),
    style: `background-color: ${colour(signal, values[n], scale)}`,
  }, token)));
  $("xray-legend").textContent = `Red is positive, blue negative; full colour at ${scale.toPrecision(3)}.`;
}

function renderDigits(signal) {
  const signals = result.layers[0].signals;
  const rows = [["digit", null], ["prediction", null], ["confidence", series("confidence")]];
  for (const name of ["c", "h", "k"]) if (signals[name]) rows.push([name, signals[name][0]]);
  const body = rows.map(([name, values]) => {
    const scale = values ? scaleOf(name, values) : 1;
    const cells = result.tokens.map((token, n) => {
      if (name === "digit") return h("td", { class: "num" }, token);
      if (name === "prediction") return h("td", { class: "num" }, String(result.digits.predictions[n]));
      return h("td", {
        class: "num", "data-pos": n, "data-signal": name, title: describe(n, name, values[n]),
        style: `background-color: ${colour(name, values[n], scale)}`,
      }, values[n].toFixed(2));
    });
    const selected = name === signal ? { class: "selected" } : {};
    return h("tr", selected, h("th", { scope: "row" }, SIGNAL_NAMES[name] || name), ...cells);
  });
  $("xray-digits").querySelector("tbody").replaceChildren(...body);
  $("xray-legend").textContent = "Red is positive, blue negative; c by its largest |value| in this input.";
}

function render() {
  const signal = $("x-signal").value;
  const isText = result.text !== null;
  $("xray-text").hidden = !isText;
  $("xray-digits").hidden = isText;
  if (isText) renderText(signal);
  else renderDigits(signal);
  $("xray-result").dataset.signal = signal;
}

function showResult(answer) {
  result = answer;
  const layer = answer.layers[0];
  $("x-shown-layer").textContent = layer.layer;
  $("x-shown-unit").textContent = layer.units[0];
  $("x-model-type").textContent = `· ${answer.model_type}, checkpoint ${answer.checkpoint_id}`;
  const extra = answer.text !== null ? ["surprisal", "entropy"] : ["confidence"];
  const chosen = $("x-signal").value;
  const options = [...Object.keys(layer.signals), ...extra];
  $("x-signal").replaceChildren(...options.map((name) => h("option", { value: name }, SIGNAL_NAMES[name])));
  $("x-signal").value = options.includes(chosen) ? chosen : (layer.signals.c ? "c" : options[0]);
  $("xray-result").hidden = false;
  render();
  $("xray-result").dataset.ready = "true";
}

async function analyze(event) {
  event.preventDefault();
  const form = $("xray-form");
  const kind = form.elements.ref_kind.value;
  const ref = form.elements.ref.value.trim();
  const digits = form.elements.digits.value.trim();
  const body = {
    [kind]: kind === "model" ? ref : Number(ref),
    layers: [Number(form.elements.layer.value)],
    units: [Number(form.elements.unit.value)],
    top: 3,
    ...(digits ? { digits } : { text: form.elements.text.value }),
  };
  const button = form.querySelector("button");
  button.disabled = true;
  $("xray-result").dataset.ready = "false";
  try {
    showResult(await postJSON("/analyze", body));
    showError($("xray-error"), null);
  } catch (error) {
    showError($("xray-error"), error);
  } finally {
    button.disabled = false;
  }
}

function readout(event) {
  const cell = event.target.closest("[data-pos]");
  if (!cell) return;
  $("xray-readout").textContent = cell.title;
}

$("xray-form").addEventListener("submit", analyze);
$("x-signal").addEventListener("change", render);
$("xray-text").addEventListener("mouseover", readout);
$("xray-digits").addEventListener("mouseover", readout);
