// The experiments list (polled) and a form that posts an experiment body as JSON.
import { ApiError, getJSON, h, poll, postJSON, showError, statusBadge } from "./api.js";

const POLL_MS = 3000;
const $ = (id) => document.getElementById(id);

poll(async () => {
  const page = await getJSON("/experiments?limit=50");
  $("experiments").querySelector("tbody").replaceChildren(...(page.items.length
    ? page.items.map((e) => h("tr", {},
      h("td", {}, h("a", { href: `/ui/experiments/${e.id}` }, `Experiment ${e.id}`)),
      h("td", {}, e.name || "–"), h("td", {}, e.task), h("td", {}, statusBadge(e.status)),
      h("td", { class: "num" }, `${e.counts.succeeded || 0} of ${e.jobs} succeeded`),
      h("td", {}, Object.entries(e.sweep).map(([k, v]) => `${k} ∈ {${v.join(", ")}}`).join(" × "))))
    : [h("tr", {}, h("td", { colspan: 6 }, "No experiments yet."))]));
}, POLL_MS, (error) => showError($("experiments-error"), error));

$("new-experiment").addEventListener("submit", async (event) => {
  event.preventDefault();
  const result = $("new-experiment-result");
  try {
    let body;
    try {
      body = JSON.parse($("experiment-body").value);
    } catch (error) {
      throw new ApiError(`the body is not JSON: ${error.message}`);
    }
    const experiment = await postJSON("/experiments", body);
    result.replaceChildren("Queued ",
      h("a", { href: `/ui/experiments/${experiment.id}` }, `experiment ${experiment.id}`),
      ` (${experiment.jobs} jobs).`);
  } catch (error) {
    result.textContent = `Not started: ${error.message}`;
  }
});
