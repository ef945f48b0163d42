// The workers table (polled), as GET /workers lists them: what Flower's worker view shows.
import { formatAgo, getJSON, h, poll, showError } from "./api.js";

const POLL_MS = 3000;  // a worker beats every few seconds: polling faster would show nothing new
const $ = (id) => document.getElementById(id);

function row(worker) {
  const job = worker.current_job_id;
  return h("tr", { "data-worker": worker.name, "data-alive": String(worker.alive) },
    h("td", {}, worker.name),
    h("td", {}, worker.queue),
    h("td", {}, worker.device),
    // Relative, since the question is "is it beating?"; the exact time on hover.
    h("td", {}, h("time", { datetime: worker.heartbeat_at, title: worker.heartbeat_at },
      formatAgo(worker.heartbeat_at))),
    h("td", {}, h("span", { class: `status status-${worker.alive ? "live" : "dead"}` },
      worker.alive ? "live" : "dead")),
    h("td", {}, job === null ? "idle" : h("a", { href: `/ui/jobs/${job}` }, `Job ${job}`)),
    h("td", { class: "num" }, worker.jobs_finished),
  );
}

// No worker means queued jobs wait forever: say how to start one rather than show an empty table.
function none() {
  return h("tr", {}, h("td", { colspan: 7 },
    "No worker has beaten lately, so queued jobs wait. Start one with ", h("code", {}, "rnnlab worker"),
    " (or ", h("code", {}, "./run serve"), ", which runs the API and a worker together)."));
}

poll(async () => {
  const workers = await getJSON("/workers");
  const live = workers.filter((w) => w.alive).length;
  $("workers-total").textContent = `(${live} live of ${workers.length})`;
  $("workers").querySelector("tbody").replaceChildren(...(workers.length ? workers.map(row) : [none()]));
}, POLL_MS, (error) => showError($("workers-error"), error));
