// Rewind console: the little that needs a script. Pages work without it, except for the
// live figures of a job page, which it refreshes every second from the page's progress URL.
"use strict";

// Forms marked `confirm` ask before they destroy something.
document.addEventListener("submit", (event) => {
  const form = event.target;
  if (form.classList && form.classList.contains("confirm")) {
    if (!window.confirm(form.dataset.confirm || "Are you sure?")) event.preventDefault();
  }
});

// In the restore wizard, typing into a choice's fields chooses it.
document.addEventListener("focusin", (event) => {
  const sub = event.target.closest ? event.target.closest("div.sub") : null;
  const label = sub ? sub.previousElementSibling : null;
  const radio = label ? label.querySelector("input[type=radio]") : null;
  if (radio) radio.checked = true;
});

function text(id, value) {
  const node = document.getElementById(id);
  if (node) node.textContent = value === null || value === undefined ? "" : String(value);
}

function bytes(n) {
  if (n === null || n === undefined) return "?";
  const units = ["B", "KiB", "MiB", "GiB", "TiB"];
  let value = n, unit = 0;
  while (value >= 1024 && unit < units.length - 1) { value /= 1024; unit++; }
  return unit === 0 ? `${n} B` : `${value.toFixed(1)} ${units[unit]}`;
}

function duration(seconds) {
  if (!isFinite(seconds) || seconds < 0) return "";
  if (seconds < 90) return `${Math.round(seconds)} s`;
  if (seconds < 5400) return `${Math.round(seconds / 60)} min`;
  return `${(seconds / 3600).toFixed(1)} h`;
}

// Each member's last figures, to derive its speed and ETA.
const previous = new Map();

function memberRow(body, name) {
  for (const row of body.rows) if (row.dataset.member === name) return row;
  const none = body.querySelector("tr.none");
  if (none) none.remove();
  const row = body.insertRow();
  row.dataset.member = name;
  for (const cls of ["name", "state", "bytes", "speed", "eta", "updated"]) {
    row.insertCell().className = cls;
  }
  row.cells[0].textContent = name;
  return row;
}

function showMembers(progress, now) {
  const table = document.getElementById("members");
  if (!table) return;
  const body = table.tBodies[0];
  for (const m of progress.results) {
    const row = memberRow(body, m.memberName);
    const done = m.bytesDelivered || 0;
    const expected = m.bytesExpected;
    row.querySelector(".state").textContent = m.state;
    row.querySelector(".bytes").textContent =
      expected ? `${bytes(done)} of ${bytes(expected)}` : bytes(done);
    const last = previous.get(m.memberName);
    if (last && now > last.at && done >= last.done) {
      const speed = (done - last.done) / ((now - last.at) / 1000);
      row.querySelector(".speed").textContent = `${bytes(Math.round(speed))}/s`;
      row.querySelector(".eta").textContent =
        expected && speed > 0 && done < expected ? duration((expected - done) / speed) : "";
    }
    row.querySelector(".updated").textContent = m.updated || "";
    previous.set(m.memberName, { at: now, done });
  }
}

function showJob(state) {
  const job = state.job;
  text("job-status", job.statusName);
  const status = document.getElementById("job-status");
  if (status) status.className = `status status-${job.statusName.toLowerCase()}`;
  text("delivery-status", job.delivery.statusName);
  text("failure-reason", job.failureReason);
  text("bytes-prepared", bytes(state.progress.bytesPrepared));
  text("bytes-expected", bytes(state.progress.bytesExpected));
  const download = document.getElementById("download");
  if (download && job.delivery.url) {
    download.hidden = false;
    const link = document.getElementById("download-link");
    if (link) { link.href = job.delivery.url; link.textContent = job.delivery.url; }
    text("download-sha1", state.sha1 || "");
    text("curl-line", `curl -fLO '${job.delivery.url}'`);
  }
  if (!state.running) {
    const cancel = document.getElementById("cancel-form");
    if (cancel) cancel.remove();
  }
  showMembers(state.progress, Date.now());
}

function watchJob() {
  const section = document.getElementById("job");
  if (!section || !section.dataset.progressUrl) return;
  const url = section.dataset.progressUrl;
  let settledPolls = 0;
  const poll = async () => {
    try {
      const response = await fetch(url, { headers: { Accept: "application/json" }, credentials: "same-origin" });
      if (response.ok && (response.headers.get("content-type") || "").includes("json")) {
        const state = await response.json();
        showJob(state);
        // A job that ended stops changing once its delivery settled; a few more polls
        // catch the last figures.
        settledPolls = state.running ? 0 : settledPolls + 1;
      }
    } catch (_) {
      // A network hiccup: the next poll tries again.
    }
    if (settledPolls < 5) setTimeout(poll, 1000);
  };
  setTimeout(poll, 1000);
}

document.addEventListener("DOMContentLoaded", watchJob);
