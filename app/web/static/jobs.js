// The jobs list (polled) and the new-job form.
import {
  formValues, formatEta, formatNumber, formatPercent, getJSON, h, poll, postJSON, showError, statusBadge,
} from "./api.js";

const POLL_MS = 1500;
const tbody = document.querySelector("#jobs tbody");

function row(job) {
  const m = job.latest_metrics;
  return h("tr", { "data-job-id": job.id, "data-status": job.status },
    h("td", {}, h("a", { href: `/ui/jobs/${job.id}` }, `Job ${job.id}`)),
    h("td", {}, job.task),
    h("td", {}, job.model),
    h("td", {}, statusBadge(job.status)),
    h("td", { class: "progress" },
      h("progress", { max: 1, value: job.progress, "aria-label": `job ${job.id} progress` }),
      h("span", { class: "percent" }, formatPercent(job.progress))),
    h("td", { class: "num" }, `${job.step} / ${job.total_steps}`),
    h("td", { class: "num" }, formatNumber(m.loss)),
    h("td", { class: "num" }, formatNumber(m.val_accuracy)),
    h("td", { class: "num" }, job.status === "running" ? formatEta(job.eta_seconds) : "–"),
  );
}

poll(async () => {
  const page = await getJSON("/jobs?limit=50");
  document.getElementById("jobs-total").textContent = `(${page.items.length} of ${page.total})`;
  tbody.replaceChildren(...(page.items.length
    ? page.items.map(row)
    : [h("tr", {}, h("td", { colspan: 9 }, "No jobs yet: start one below."))]));
}, POLL_MS, (error) => showError(document.getElementById("jobs-error"), error));

const form = document.getElementById("new-job");
const taskSelect = document.getElementById("task");
function showTaskFields() {
  for (const fieldset of form.querySelectorAll("fieldset[data-task]")) {
    const active = fieldset.dataset.task === taskSelect.value;
    fieldset.hidden = !active;
    fieldset.disabled = !active;  // a disabled fieldset's inputs are left out of the request
  }
}
taskSelect.addEventListener("change", showTaskFields);
showTaskFields();

// Uploaded corpora (POST /datasets); the built-in one is what an empty choice means.
getJSON("/datasets").then((datasets) => {
  document.getElementById("t-dataset").append(...datasets.filter((d) => !d.builtin).map((d) =>
    h("option", { value: d.id }, `${d.name} (${d.characters.toLocaleString()} characters)`)));
}, (error) => showError(document.getElementById("jobs-error"), error));

form.addEventListener("submit", async (event) => {
  event.preventDefault();
  const result = document.getElementById("new-job-result");
  result.className = "";
  try {
    const job = await postJSON("/train", formValues(form));
    result.replaceChildren("Queued ", h("a", { href: `/ui/jobs/${job.id}` }, `job ${job.id}`), ".");
  } catch (error) {
    result.className = "error";
    result.textContent = `Not started: ${error.message}`;
  }
});
