// One job: its status (polled until it ends) with its attempts and why it waits, curves, samples,
// checkpoints, and the generate form; for a text job also its learning timeline and memory horizon,
// redrawn when a checkpoint is added.
import {
  formValues, formatEta, formatNumber, formatPercent, getJSON, h, imageURL, poll, postJSON,
  showError, statusBadge, streamEvents,
} from "./api.js";

const POLL_MS = 1500;
const PLOT_EVERY_MS = 5000;  // the server draws the PNG: no need to redraw it at every poll
const FINISHED = new Set(["succeeded", "failed", "cancelled"]);
const jobId = Number(document.getElementById("job").dataset.jobId);
const $ = (id) => document.getElementById(id);

let lastPlot = 0;
let shownCheckpoints = "";

async function refreshCurves() {
  const caption = $("curves-caption");
  const img = $("curves-img");
  try {
    const previous = img.src;
    img.src = await imageURL(`/jobs/${jobId}/plot.png?metrics=loss,val_loss`);
    if (previous) URL.revokeObjectURL(previous);
    img.hidden = false;
    caption.textContent = "Training loss (loss) and validation loss (val_loss) against step.";
  } catch (error) {
    caption.textContent = `No curves yet (${error.message}).`;
  }
}

async function refreshSamples() {
  const samples = await getJSON(`/jobs/${jobId}/samples`);
  $("samples").querySelector("tbody").replaceChildren(...(samples.length
    ? samples.map((s) => h("tr", {},
      h("td", { class: "num" }, s.step), h("td", { class: "num" }, s.temperature),
      h("td", {}, h("pre", { class: "sample" }, s.text))))
    : [h("tr", {}, h("td", { colspan: 3 }, "None yet."))]));
}

async function refreshTimeline() {
  const table = $("timeline").querySelector("tbody");
  // The prompt as typed: formValues leaves an empty field out, and an empty prompt is a valid one.
  const query = new URLSearchParams({ ...formValues($("timeline-form")), prompt: $("t-prompt").value });
  showError($("timeline-error"), null);
  try {
    const timeline = await getJSON(`/jobs/${jobId}/timeline?${query}`);
    table.replaceChildren(...timeline.rows.map((r) => h("tr", { "data-step": r.step },
      h("td", { class: "num" }, r.step),
      h("td", { class: "num" }, formatNumber(r.val_bits_per_char)),
      h("td", { class: "num" }, r.train_accuracy == null ? "–" : formatPercent(r.train_accuracy)),
      h("td", {}, h("pre", { class: "sample" }, h("span", { class: "prompt" }, timeline.prompt), r.text)))));
  } catch (error) {
    showError($("timeline-error"), error);
  }
}

async function refreshHorizon() {
  const caption = $("horizon-caption");
  const img = $("horizon-img");
  try {
    const previous = img.src;
    img.src = await imageURL(`/jobs/${jobId}/memory-horizon.png?checkpoints=all`);
    if (previous) URL.revokeObjectURL(previous);
    img.hidden = false;
    caption.textContent = "How strongly the next character's log-probability depends on the character "
      + "k back, averaged over the validation text, at each kept checkpoint (log scale).";
  } catch (error) {
    caption.textContent = `No memory horizon (${error.message}).`;
  }
}

async function refreshCheckpoints(task) {
  const checkpoints = await getJSON(`/jobs/${jobId}/checkpoints`);
  const key = checkpoints.map((c) => c.id).join(",");
  if (key === shownCheckpoints) return;
  shownCheckpoints = key;
  $("checkpoints").querySelector("tbody").replaceChildren(...(checkpoints.length
    ? checkpoints.map((c) => h("tr", {},
      h("td", { class: "num" }, c.id), h("td", { class: "num" }, c.step),
      h("td", { class: "num" }, formatNumber(c.val_loss)),
      h("td", {}, [c.is_best && "best", c.is_final && "final"].filter(Boolean).join(", ") || "–"),
      h("td", { class: "num" }, `${(c.size_bytes / 1024).toFixed(0)} KiB`),
      h("td", {}, h("a", { href: `/checkpoints/${c.id}/file`, download: true }, "download .pt"))))
    : [h("tr", {}, h("td", { colspan: 6 }, "None yet."))]));
  const select = $("g-checkpoint");
  const chosen = select.value;
  select.replaceChildren(h("option", { value: "" }, "the job's latest"),
    ...checkpoints.map((c) => h("option", { value: c.id }, `checkpoint ${c.id} (step ${c.step})`)));
  select.value = chosen;
  // After the table: sampling every checkpoint takes a moment, the table should not wait for it.
  if (task === "text" && checkpoints.length) {
    await refreshTimeline();
    await refreshHorizon();
  }
}

// A time as this browser's clock reads it, with the server's ISO time on hover.
function when(iso) {
  return iso ? h("time", { datetime: iso, title: iso }, new Date(iso).toLocaleString()) : "–";
}

function showAttempts(job) {
  $("job-waiting").hidden = !job.waiting_reason;
  $("job-waiting").textContent = job.waiting_reason ? `Waiting: ${job.waiting_reason}` : "";
  $("attempts").querySelector("tbody").replaceChildren(...(job.attempt_history.length
    ? job.attempt_history.map((a) => h("tr", { "data-attempt": a.number },
      h("td", { class: "num" }, a.number), h("td", {}, a.worker), h("td", {}, a.device),
      h("td", {}, when(a.started_at)), h("td", {}, when(a.ended_at)),
      // An attempt still running has no outcome yet; "worker lost" becomes one class name.
      h("td", {}, a.outcome === null ? "running"
        : h("span", { class: `status status-${a.outcome.replaceAll(" ", "-")}` }, a.outcome))))
    : [h("tr", {}, h("td", { colspan: 6 }, "None yet: no worker has claimed the job."))]));
}

function showJob(job) {
  $("job-kind").textContent = `${job.task} · ${job.model}`;
  $("job-status").replaceChildren(statusBadge(job.status), job.error ? ` ${job.error}` : "");
  $("job-progress").value = job.progress;
  $("job-progress-text").textContent = `${formatPercent(job.progress)} (step ${job.step} of ${job.total_steps})`;
  $("job-eta").textContent = job.status === "running" ? formatEta(job.eta_seconds) : "–";
  const metrics = Object.entries(job.latest_metrics).sort();
  $("job-metrics").textContent = metrics.length
    ? metrics.map(([k, v]) => `${k} ${formatNumber(v)}`).join(" · ") : "–";
  $("cancel").hidden = FINISHED.has(job.status) || job.cancel_requested;
  showAttempts(job);
  for (const id of job.task === "text" ? ["generate-section", "timeline-section", "horizon-section"]
    : ["predict-section"]) $(id).hidden = false;
}

let lastStep = -1;
poll(async () => {
  const job = await getJSON(`/jobs/${jobId}`);
  showJob(job);
  const done = FINISHED.has(job.status);
  if (job.step !== lastStep || done) {
    lastStep = job.step;
    await refreshCheckpoints(job.task);
    if (job.task === "text") await refreshSamples();
    if (done || Date.now() - lastPlot > PLOT_EVERY_MS) {
      lastPlot = Date.now();
      await refreshCurves();
    }
  }
  return !done;
}, POLL_MS, (error) => showError($("job-error"), error));

$("cancel").addEventListener("click", async () => {
  try {
    const job = await postJSON(`/jobs/${jobId}/cancel`);
    $("cancel-result").textContent = job.status === "cancelled" ? "Cancelled." : "Stopping after this step…";
  } catch (error) {
    $("cancel-result").textContent = `Not cancelled: ${error.message}`;
  }
});

$("generate").addEventListener("submit", async (event) => {
  event.preventDefault();
  const { checkpoint, ...params } = formValues(event.target);
  const body = { ...params, prompt: $("g-prompt").value };  // an empty prompt is a valid prompt
  if (checkpoint) body.checkpoint_id = Number(checkpoint);
  else body.job_id = jobId;
  const out = $("generated");
  const button = event.target.querySelector("button");
  showError($("generate-error"), null);
  out.replaceChildren(h("span", { class: "prompt" }, body.prompt));
  out.removeAttribute("data-done");
  button.disabled = true;
  try {
    await streamEvents("/generate/stream", body, (e) => { if (e.text) out.append(e.text); });
    out.dataset.done = "true";
  } catch (error) {
    showError($("generate-error"), error);
  } finally {
    button.disabled = false;
  }
});

$("timeline-form").addEventListener("submit", async (event) => {
  event.preventDefault();
  const button = event.target.querySelector("button");
  button.disabled = true;
  try {
    await refreshTimeline();
  } finally {
    button.disabled = false;
  }
});

$("predict").addEventListener("submit", async (event) => {
  event.preventDefault();
  try {
    const r = await postJSON("/predict", { job_id: jobId, digits: $("p-digits").value });
    const p = Math.max(...r.probabilities);
    $("predicted").textContent = `Last digit: ${r.predicted_digit} (probability ${p.toFixed(3)})`;
  } catch (error) {
    $("predicted").textContent = `No prediction: ${error.message}`;
  }
});
