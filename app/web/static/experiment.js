// One experiment: status and counts (polled until it ends), its plot and its results table.
import { formatNumber, getJSON, h, imageURL, poll, postJSON, showError, statusBadge } from "./api.js";

const POLL_MS = 2000;
const FINISHED = new Set(["succeeded", "partial", "failed", "cancelled"]);
const experimentId = Number(document.getElementById("experiment").dataset.experimentId);
const $ = (id) => document.getElementById(id);
let axesShown = false;
let plottedFor = "";

function chooseAxes(sweep) {
  const axes = Object.keys(sweep);
  const x = $("plot-x"), hue = $("plot-hue");
  x.replaceChildren(...axes.map((a) => h("option", {}, a)));
  hue.append(...axes.map((a) => h("option", {}, a)));
  // The course's figure: accuracy against length, one line per model.
  x.value = axes.includes("input_length") ? "input_length" : axes[0];
  hue.value = axes.includes("model") && x.value !== "model" ? "model" : "";
}

async function refreshPlot() {
  const form = new URLSearchParams(new FormData($("plot-form")));
  if (!form.get("hue")) form.delete("hue");
  const img = $("plot"), caption = $("plot-caption");
  try {
    const previous = img.src;
    img.src = await imageURL(`/experiments/${experimentId}/plot.png?${form}`);
    if (previous) URL.revokeObjectURL(previous);
    img.hidden = false;
    caption.textContent = `${form.get("metric")} against ${form.get("x")}: mean over the other axes, shaded from min to max.`;
  } catch (error) {
    img.hidden = true;
    caption.textContent = `No plot yet (${error.message}).`;
  }
}

function showResults(experiment) {
  const axes = Object.keys(experiment.sweep);
  const metrics = [...new Set(experiment.results.flatMap((r) => Object.keys(r.final_metrics)))]
    .filter((m) => m.startsWith("val_")).sort();
  const columns = [...axes, "job", "status", "step", ...metrics, "best_val_loss", "best_val_accuracy"];
  $("results").querySelector("thead").replaceChildren(
    h("tr", {}, ...columns.map((c) => h("th", { scope: "col" }, c))));
  $("results").querySelector("tbody").replaceChildren(...experiment.results.map((r) => h("tr", {},
    ...axes.map((a) => h("td", {}, String(r.params[a]))),
    h("td", {}, h("a", { href: `/ui/jobs/${r.job_id}` }, `Job ${r.job_id}`)),
    h("td", {}, statusBadge(r.status)),
    h("td", { class: "num" }, r.step),
    ...metrics.map((m) => h("td", { class: "num" }, formatNumber(r.final_metrics[m]))),
    h("td", { class: "num" }, formatNumber(r.best_val_loss)),
    h("td", { class: "num" }, formatNumber(r.best_val_accuracy)))));
}

poll(async () => {
  const experiment = await getJSON(`/experiments/${experimentId}`);
  $("experiment-name").textContent = experiment.name ? `· ${experiment.name}` : "";
  $("experiment-status").replaceChildren(statusBadge(experiment.status));
  $("experiment-counts").textContent = Object.entries(experiment.counts)
    .filter(([, n]) => n).map(([s, n]) => `${n} ${s}`).join(", ") + ` (of ${experiment.jobs})`;
  $("experiment-sweep").textContent = Object.entries(experiment.sweep)
    .map(([k, v]) => `${k} ∈ {${v.join(", ")}}`).join(" × ");
  const done = FINISHED.has(experiment.status);
  $("cancel").hidden = done;
  if (!axesShown) {
    chooseAxes(experiment.sweep);
    axesShown = true;
  }
  showResults(experiment);
  const progress = JSON.stringify(experiment.counts);
  if (progress !== plottedFor) {  // redraw when a job has ended, not at every poll
    plottedFor = progress;
    await refreshPlot();
  }
  return !done;
}, POLL_MS, (error) => showError($("experiment-error"), error));

$("plot-form").addEventListener("change", refreshPlot);
$("cancel").addEventListener("click", async () => {
  try {
    await postJSON(`/experiments/${experimentId}/cancel`);
  } catch (error) {
    showError($("experiment-error"), error);
  }
});
